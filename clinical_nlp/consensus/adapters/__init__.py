"""Modality adapters: each turns its annotations into the long frame of :mod:`clinical_nlp.consensus`."""
