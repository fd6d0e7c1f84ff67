"""Build cells from INI text without the DeepNet (``build.build_cells_from``: N2D2's order)."""
import numpy

from n2d2py.autograd import Variable
from n2d2py.build import build_cells_from
from n2d2py.ini import parse_ini_text


def env_shape(doc):
    for name in ("sp", "env"):
        if name in doc:
            s = doc.section(name)
            return (int(s.get("NbChannels", "1")), int(s.get("SizeY")), int(s.get("SizeX")))
    return None


def build_cells(text, env=(1, 8, 8), seed=0, doc=None):
    """``{name: cell}`` built in N2D2's order; ``env`` is the stimuli (C, H, W)."""
    doc = doc if doc is not None else parse_ini_text(text)
    env = env_shape(doc) or env
    return build_cells_from(doc, tuple(env), numpy.random.default_rng(seed)).cells


def run(cells, x, training=False):
    """Forward every cell in order; returns ``{name: array}``."""
    values = {"env": Variable(numpy.asarray(x, dtype=numpy.float32))}
    for name, cell in cells.items():
        values[name] = cell.forward([values[p] for p in cell.parents], training)
    return {k: v.data for k, v in values.items()}
