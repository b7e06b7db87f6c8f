"""Generator kinds: the contract (base.py) and one module per kind; ``base.generator_kinds()`` lists them."""
