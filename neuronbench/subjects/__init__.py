"""Subject models, their neuron sites and the corpora they read.

Public surface: ``load_subject`` / ``tiny_subject`` (``Subject``), ``site_for`` /
``capture`` (``NeuronSite``), ``iter_records`` / ``token_strings`` (``CorpusRecord``).
Importing this package does not import torch or transformers: the functions do.
"""

from neuronbench.subjects.corpus import CorpusRecord, iter_records, token_strings
from neuronbench.subjects.models import Subject, SubjectError, load_subject, tiny_subject
from neuronbench.subjects.sites import Capture, NeuronSite, capture, site_for

__all__ = [
    "Capture",
    "CorpusRecord",
    "NeuronSite",
    "Subject",
    "SubjectError",
    "capture",
    "iter_records",
    "load_subject",
    "site_for",
    "tiny_subject",
    "token_strings",
]
