"""From an INI document to the parts of a DeepNet, as N2D2's ``generateFromINI`` builds them.

Global keys (``read_global_keys``, ``choose_device``), the stimuli provider (``build_stimuli``),
the build order (``cell_order``), then the cells (``build_cells``: each cell writes its ``_*``
keys, targets attach to their cell); docs/INI.md §5-§6 says what each step reads.
``deepnet.DeepNet.from_ini`` calls them in that order;
``build_cells_from(document, input_shape)`` runs the order and the build alone (tests, tools).

A section's ``Type`` names a cell class (``cells.CELLS``) or a *section builder* registered in
``SECTION_BUILDERS``: a function ``(section, parents, in_shapes, rng) -> (cells, targets,
aliases)`` that makes several cells at once (``onnx/section.py`` registers ``Type=ONNX``);
``aliases`` ({name: cell name}) are other names for a cell's output with the same layout (an
ONNX graph output that only flattens a cell's output). The names of the cells such a section
makes are known only once it is built: other sections may name them (or an alias) as parents,
and a parent naming the section itself reads its last cell (docs/INI.md §6, "Order").

Where we differ from N2D2 (and say so): a section whose parents never resolve (a cycle) or a
parent that names no cell is **reported** as an IniError; N2D2 silently drops such sections.
"""
from collections import namedtuple

import numpy

from . import backend
from .errors import IniError, close_matches
from .ini.diagnostics import check_global_keys
from .params import Registry
from .target import target_from_section

SECTION_BUILDERS = Registry("section builder")

FRAME_MODELS = ("Frame", "Frame_CUDA", "Transcode", "Transcode_CUDA")
DATA_TYPES = ("Float16", "Float32", "Float64")
#: Cell types N2D2 has that n2d2py does not implement (detection, spiking, LSTM).
OUT_OF_SCOPE_CELLS = {
    "Anchor": "Faster R-CNN detection", "RP": "Faster R-CNN detection",
    "ROIPooling": "Faster R-CNN detection", "Proposal": "detection",
    "ObjectDet": "SSD detection", "FMP": "fractional max pooling", "Unpool": "unpooling",
    "Distance": "distance", "LSTM": "cuDNN LSTM",
}


def seed_quantizers(cells, seed):
    """Quantizers with their own generator (Prune's random masks) get one derived from the run's
    seed, so that every random draw of a run follows ``--seed``."""
    for index, cell in enumerate(cells.values()):
        for role, q in ((1, getattr(cell, "qweight", None)), (2, getattr(cell, "qact", None))):
            if isinstance(getattr(q, "rng", None), numpy.random.Generator):
                q.rng = numpy.random.default_rng([int(seed) & 0xFFFFFFFF, 7, index, role])


# -- global keys, device, stimuli ------------------------------------------------------------
def read_global_keys(document, notices):
    """Check the section-less keys (docs/INI.md §5); returns DefaultModel."""
    section = document.global_section
    model = section.get("DefaultModel", "Transcode").strip()
    if model.startswith(("Spike", "CSpike")):
        raise section.error(f"spiking models (DefaultModel={model}) are out of scope for n2d2py",
                            key="DefaultModel")
    if model not in FRAME_MODELS:
        raise section.error(f"unknown DefaultModel '{model}'{close_matches(model, FRAME_MODELS)}",
                            key="DefaultModel")
    data_type = section.get("DefaultDataType", "Float32").strip()
    if data_type not in DATA_TYPES:
        raise section.error(f"unknown DefaultDataType '{data_type}'; expected one of "
                            f"{', '.join(DATA_TYPES)}", key="DefaultDataType")
    if data_type != "Float32":
        notices.append(f"Notice: DefaultDataType={data_type}: n2d2py computes in Float32")
    if section.get("InsertBatchNormAfterConv", "0").strip() not in ("0", ""):
        raise section.error("InsertBatchNormAfterConv=1 is not supported by n2d2py; write the "
                            "BatchNorm sections in the INI", key="InsertBatchNormAfterConv")
    check_global_keys(document)  # any other non-$ key is fatal, as in N2D2
    return model


def choose_device(device, model, notices):
    if device is None:
        if model.endswith("_CUDA"):
            if backend.cupy_available:
                return "gpu"
            notices.append(f"Notice: DefaultModel={model} but no usable GPU (CuPy): running on the CPU")
        return "cpu"
    if device in ("gpu", "cuda"):
        if not backend.cupy_available:
            raise IniError("--device gpu needs CuPy and a CUDA GPU, and none is usable here")
        return "gpu"
    if device != "cpu":
        raise IniError(f"unknown device '{device}': expected cpu or gpu")
    return "cpu"


def stimuli_section(document):
    """``[cenv]`` (spiking), else ``[env]``, else ``[sp]``, the order N2D2 looks for them in."""
    if "cenv" in document:
        raise document.section("cenv").error("[cenv] (spiking stimuli) is out of scope for n2d2py")
    for name in ("env", "sp"):
        if name in document:
            return document.section(name)
    raise IniError("Missing [sp] section.", file=document.path)


#: ``_EpochSize`` written by a build that reads no data: 2**16 keeps schedules written in epochs
#: (``$([sp]_EpochSize * 90 / 256)``) positive whole numbers for any power-of-two batch size.
NOMINAL_EPOCH_SIZE = 65536


def build_stimuli(document, load_data, rng):
    """Database + StimuliProvider (``_EpochSize`` is written into the sp section by data/).

    ``load_data=False`` (``--build-only``) reads no file: the database keys are read but nothing
    is loaded (an unavailable database type only gives a notice), ``_EpochSize`` is nominal, and
    when the StimuliProvider cannot be built without data (``sp.StimuliData*`` statistics) the
    input shape comes from the [sp] size keys. Returns (database, sp or None, (C, H, W))."""
    section = stimuli_section(document)
    check_spiking_stimuli(document, section)
    from .data import StimuliProvider
    database = _database(document, load_data, rng)
    if load_data:
        sp = StimuliProvider.from_ini(document, database, rng)
        return database, sp, tuple(int(d) for d in sp.size)
    try:
        sp = StimuliProvider.from_ini(document, database, rng)
        shape = tuple(int(d) for d in sp.size)
    except IniError as exc:
        if "no stimulus" not in exc.message:
            raise
        sp, shape = None, input_shape_from_keys(document, section)
        document.warn(f"Notice: {exc.message}: input size taken from the [{section.name}] keys",
                      section)
    section.set("_EpochSize", NOMINAL_EPOCH_SIZE)
    return database, sp, shape


def _database(document, load_data, rng):
    """The [database] section's Database, or an empty one (no section, or a type that is not
    available in a ``load_data=False`` build: a notice)."""
    from .data import DATABASES, Database
    from .data.database import database_from_section
    for sub in document.matching("database.*"):
        raise sub.error("database sub-sections (sortAndDropLabels, filterROIs, slicing) are not "
                        "supported by n2d2py")
    if "database" not in document:
        document.warn("Warning: no database specified.", document.global_section)
        return Database(rng=rng)
    if load_data or document.section("database").get("Type", "").strip() in DATABASES:
        return database_from_section(document.section("database"), rng, load=load_data)
    db = document.section("database")
    db.mark_all_read()
    document.warn(f"Notice: database type '{db.get('Type').strip()}' is not available; "
                  f"building without data", db, "Type")
    return Database(rng=rng)


def input_shape_from_keys(document, section):
    """(C, H, W) from the sp size keys; each ``ChannelTransformation`` without ``Channel=``
    starts a new input channel (as in N2D2), as data/sp_ini.py counts them."""
    from .data.sp_ini import KINDS, read_size
    c, h, w = read_size(section)
    new = 0
    for sub in document.matching(section.name + ".*"):
        tail = sub.name[len(section.name) + 1:]
        kind = next((k for prefix, k, _ in KINDS if tail.startswith(prefix)), None)
        new += kind == "channel" and "Channel" not in sub
    return (new or c, h, w)


def check_spiking_stimuli(document, section):
    """``StimulusType`` in the sp config section means spike coding (out of scope)."""
    name = section.raw("ConfigSection").strip() if "ConfigSection" in section else None
    if name and name in document and "StimulusType" in document.section(name):
        config = document.section(name)
        raise config.error(f"spiking stimuli (StimulusType={config.raw('StimulusType').strip()}) "
                           f"are out of scope for n2d2py", key="StimulusType")


# -- order -----------------------------------------------------------------------------------
def input_names(section):
    """Parents of a cell section: ``Input`` split on ',' (blanks trimmed), sp/cenv -> env."""
    names = [n.strip() for n in section.get("Input").split(",")]
    return ["env" if n in ("sp", "cenv", "env") else n for n in names if n]


def cell_order(document):
    """Cell sections in N2D2 build order: level = 1 + max level of the
    parents that are sections with ``Input`` (env is 0), found by repeated passes in file
    order; then sorted by (level, file order). Returns ([(section, parents)], {name: level}).

    Unlike N2D2 (which silently never builds them), a parent naming no cell and a cycle are
    IniErrors naming the section and the parent."""
    sections = [s for s in document if s.name and "Input" in s]
    cells = {s.name: s for s in sections}
    # a section builder names its cells only when it runs: unknown parents may be among them
    late_names = any(s.get("Type", "").strip() in SECTION_BUILDERS for s in sections)
    parents = _parents(document, sections, cells, late_names)
    levels = _levels(sections, parents, cells)
    for section in sections:
        if section.name not in levels:
            cycle = _find_cycle(section.name, parents, levels, cells)
            raise section.error(f"cannot order [{section.name}]: parent '{cycle[1]}' never "
                                f"resolves (cycle {' -> '.join(cycle)})", key="Input")
    position = {s.name: i for i, s in enumerate(sections)}
    order = sorted(sections, key=lambda s: (levels[s.name], position[s.name]))
    del levels["env"]
    return [(s, parents[s.name]) for s in order], levels


def _parents(document, sections, cells, late_names):
    """``{section name: parent names}``; an empty Input or an unknown parent is an IniError."""
    parents = {}
    for section in sections:
        parents[section.name] = input_names(section)
        if not parents[section.name]:
            raise section.error("Input is empty", key="Input")
        for parent in parents[section.name]:
            if parent != "env" and parent not in cells and not late_names:
                hint = (" (that section has no Input key, so it is not a cell)" if parent in document
                        else close_matches(parent, [c for c in cells if c != section.name] + ["sp"]))
                raise section.error(f"unknown parent '{parent}'{hint}", key="Input")
    return parents


def _levels(sections, parents, cells):
    """``{name: level}`` (env is 0) of the sections whose parents resolve, by repeated passes."""
    levels = {"env": 0}
    changed = True
    while changed:
        changed = False
        for section in sections:
            if section.name in levels:
                continue
            counted = [p for p in parents[section.name] if p == "env" or p in cells]
            if all(p in levels for p in counted):
                levels[section.name] = 1 + max((levels[p] for p in counted), default=0)
                changed = True
    return levels


def _find_cycle(start, parents, levels, cells):
    path, seen = [start], {start: 0}
    node = start
    while True:
        node = next(p for p in parents[node] if p in cells and p not in levels)
        if node in seen:
            return path[seen[node]:] + [node]
        seen[node] = len(path)
        path.append(node)


# -- build -----------------------------------------------------------------------------------
BuiltCells = namedtuple("BuiltCells", "cells targets levels")


def build_cells_from(document, input_shape, rng=None):
    """The cells of ``document`` in N2D2's order, built on an input of ``input_shape`` (C, H, W),
    with their targets: ``BuiltCells(cells={name: Cell}, targets=[Target], levels={name: level})``.
    Reads no global key and no data (``DeepNet.from_ini`` does that first)."""
    rng = numpy.random.default_rng(0) if rng is None else rng
    order, levels = cell_order(document)
    cells, targets = build_cells(document, order, input_shape, rng)
    return BuiltCells(cells, targets, levels)


def build_cells(document, order, input_shape, rng):
    """Build each section in order (each cell writes its ``_*`` keys, docs/INI.md §6), attach
    targets. Returns ({name: Cell}, [Target])."""
    cells, targets, made, aliases = {}, [], {}, {}
    for section, parents in order:
        parents = resolve_parents(section, parents, made)  # onnx builders, aliases
        parents = [p if p in cells else aliases.get(p, p) for p in parents]
        for parent in parents:
            if parent != "env" and parent not in cells:
                raise section.error(f"parent '{parent}' is not a cell built so far"
                                    f"{close_matches(parent, list(cells) + ['sp'])}", key="Input")
        in_shapes = [tuple(input_shape) if p == "env" else tuple(cells[p].out_shape)
                     for p in parents]
        type_name = section.get("Type").strip()
        if type_name in SECTION_BUILDERS:
            new_cells, new_targets, new_aliases = \
                SECTION_BUILDERS.get(type_name)(section, parents, in_shapes, rng)
            for name in new_cells:
                if name in cells:
                    raise section.error(f"the cell '{name}' this section makes already exists")
            made[section.name] = list(new_cells)
            cells.update(new_cells)
            targets.extend(new_targets)
            aliases.update(new_aliases)
            continue
        cell = build_cell(section, parents, in_shapes, rng)
        cells[section.name] = cell  # build() wrote the _* keys ([name]_NbOutputs & co.)
        targets.extend(cell_targets(document, section, cell))
    return cells, targets


def resolve_parents(section, parents, made):
    """N2D2's rule: ``Input=onnx,<imported cell>`` lists a builder section only to order the
    cell after it; the section name is then dropped. ``made``: {builder section: [its cells]}.

    A cell naming *only* builder sections reads each one's last cell (N2D2 would fail on the
    lookup: the section is not a cell)."""
    if not any(p in made for p in parents):
        return parents
    if any(p not in made for p in parents):
        return [p for p in parents if p not in made]
    out = []
    for p in parents:
        if not made[p]:
            raise section.error(f"parent [{p}] made no cell", key="Input")
        out.append(made[p][-1])
    return out


def build_cell(section, parents, in_shapes, rng):
    """The cell of ``section`` built on its parents' output shapes ``in_shapes``."""
    from .cells import CELLS
    type_name = section.get("Type").strip()
    if type_name in OUT_OF_SCOPE_CELLS:
        raise section.error(f"cell type '{type_name}' ({OUT_OF_SCOPE_CELLS[type_name]}) is out "
                            f"of scope for n2d2py", key="Type")
    cls = CELLS.get(type_name, section)
    cell = cls.from_section(section, parents)
    try:
        cell.build(in_shapes, rng)
    except (MemoryError, ValueError) as exc:  # an absurd NbOutputs or size: name the cell
        if isinstance(exc, ValueError) and not ("too big" in str(exc) or "dimension" in str(exc)):
            raise
        raise section.error(f"not enough memory to build this {type_name} cell from inputs "
                            f"{in_shapes}: check NbOutputs and the kernel/pool sizes") from None
    return cell


def cell_targets(document, section, cell):
    """The ``[<cell>.Target*]`` sections of a built cell, with the cell's loss kind."""
    targets = []
    for target_section in document:
        if target_section.name.startswith(section.name + ".Target"):
            target = target_from_section(target_section, section.name)
            target.loss_kind = target_loss_kind(cell)
            targets.append(target)
    return targets


def target_loss_kind(cell):
    """The loss of a target on ``cell``: the cell's own (a ``LogisticWithLoss`` activation:
    "sigmoid"), "softmax" for a ``Softmax`` with ``WithLoss=1``, else None (MSE)."""
    return getattr(cell, "loss_kind", None) or \
        ("softmax" if getattr(cell, "with_loss", False) else None)
