"""Build cells from INI text without the DeepNet: sections with ``Input`` in file order
(the snippets and N2D2's test models are already in topological order)."""
import numpy

from n2d2py.autograd import Variable
from n2d2py.cells import CELLS
from n2d2py.ini import parse_ini_text


def env_shape(doc):
    for name in ("sp", "env"):
        if name in doc:
            s = doc.section(name)
            return (int(s.get("NbChannels", "1")), int(s.get("SizeY")), int(s.get("SizeX")))
    return None


def build_cells(text, env=(1, 8, 8), seed=0, doc=None):
    """``{name: cell}`` built in file order; ``env`` is the stimuli (C, H, W)."""
    doc = doc if doc is not None else parse_ini_text(text)
    env = env_shape(doc) or env
    rng = numpy.random.default_rng(seed)
    cells, shapes = {}, {"env": tuple(env)}
    for section in doc:
        if not section.name or "Input" not in section:
            continue
        parents = ["env" if p.strip() in ("sp", "env", "cenv") else p.strip()
                   for p in section.get("Input").split(",")]
        cls = CELLS.get(section.get("Type"), section)
        cell = cls.from_section(section, parents)
        cell.build([shapes[p] for p in parents], rng)
        cells[section.name] = cell
        shapes[section.name] = cell.out_shape
    return cells


def run(cells, x, training=False):
    """Forward every cell in order; returns ``{name: array}``."""
    values = {"env": Variable(numpy.asarray(x, dtype=numpy.float32))}
    for name, cell in cells.items():
        values[name] = cell.forward([values[p] for p in cell.parents], training)
    return {k: v.data for k, v in values.items()}
