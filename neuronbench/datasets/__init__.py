"""Neuron record schema, storage, OpenAI JSON interop and splits.

Must not import models: datasets are plain data any stage (or user) can read.
"""

from neuronbench.datasets.errors import DatasetError
from neuronbench.datasets.openai_json import export_openai, import_openai
from neuronbench.datasets.schema import ActivationRecord, DatasetCard, NeuronId, NeuronRecord
from neuronbench.datasets.splits import ScoringSet, Split, scoring_records, train_records
from neuronbench.datasets.storage import NeuronDataset, read_card

__all__ = [
    "ActivationRecord",
    "DatasetCard",
    "DatasetError",
    "export_openai",
    "import_openai",
    "NeuronDataset",
    "NeuronId",
    "NeuronRecord",
    "ScoringSet",
    "Split",
    "read_card",
    "scoring_records",
    "train_records",
]
