"""sigdist: Semi-Implicit Generative Models (Yin & Zhou) as a distributed hyperparameter study."""

__version__ = "0.1.0"
