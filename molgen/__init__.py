"""molgen: equivariant diffusion models for 3D molecules and protein backbones."""

__version__ = "0.1.0"


def load_pretrained(name: str = "qm9", device: str = "cpu"):
    """A pretrained model shipped with molgen, ready to ``.sample(n, seed=...)``;
    see :mod:`molgen.pretrained` (imported lazily: ``import molgen`` stays light)."""
    from molgen.pretrained import load_pretrained as load

    return load(name, device)
