"""One exception type for bad neuron data, so callers can catch it and users read one line."""


class DatasetError(ValueError):
    """Malformed or missing neuron data. The message names the file, neuron and record."""
