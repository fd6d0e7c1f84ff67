"""INI sections that configure imported cells (docs/INI.md §9); docs/pytorch.md ("Which section
configures which cell") is the user's version, with examples.

**A cell's section.** As N2D2 does, the first that exists of ``[<cell>]`` (the node's first
output) and ``[<onnx>:<Type>_def]`` is applied, the other is not read. ``Type`` is the cell's
N2D2 type: ``Conv``, ``Fc`` (Gemm, MatMul), ``BatchNorm``, ``Pool``, ``Dropout`` and ``LRN`` as
in N2D2; n2d2py extension: the same lookup for every other cell the import makes (``ElemWise``
for Add/Sum/Sub/Max/Mul, ``Activation`` for Concat and for an activation that cannot merge,
``Padding``, ``Softmax``...). Before the cell is built it sets the fillers (``ONNX_init=0``),
solvers, ``QWeight`` (+ ``QWeightSolver``), ``ConfigSection`` and ``<section>.cfg``.

**A cell's activation.** An ONNX activation node (Relu, LeakyRelu, Sigmoid, Tanh, Softplus,
ReLU-like Clip) merges into the cell that computes its input, as in N2D2, or becomes an
``Activation`` cell of its own. Once the graph is imported, the activation a cell ends with
(``ActivationFunction``, ``ActivationFunction.*``, ``QAct``, ``QAct.*``, ``QActSolver``) is
set by the first of these sections that exists and holds such keys:

1. ``[<activation node's output>]`` (N2D2): its ``ActivationFunction`` replaces the ONNX one;
   an empty section drops the activation, as N2D2 does (with a warning here), and a ``QAct``
   without ``ActivationFunction`` is an error (N2D2 would drop both silently);
2. the cell's own section (above) — **n2d2py extension**: N2D2 reads no activation key from
   it, so ``[onnx:BatchNorm_def]`` with ``ActivationFunction=Linear`` and ``QAct=SAT`` sets the
   activation of every BatchNorm cell, its merged ReLU replaced;
3. ``[<onnx>:<Activation>_def]`` with the N2D2 name of the ONNX activation (``Rectifier``,
   ``Logistic``, ``Tanh``, ``Softplus``, ``Linear`` for a symmetric Clip) — **n2d2py
   extension** (N2D2's importer has ``Rectifier_def`` commented out): every cell that ends with
   that ONNX activation and has no section above.

Without ``ActivationFunction`` the ONNX activation stays and the quantizer goes after it.

**Keys that cannot apply are errors** naming the file and line: structural keys (from the
node), cell parameters written outside a ConfigSection, ``QWeight`` on a cell without weights,
fillers whose values the ONNX initializers replace (``ONNX_init=1``), a ``QAct.*`` without
``QAct``, anything but activation keys in a section named after an activation node that
merged into another cell or in an activation block, and a section named after a node that
becomes no cell (a view such as Flatten, a folded constant, an ignored node). **Difference
from N2D2**, which only prints "Unused section". A block that applies to no cell, or whose
activation keys every cell takes from a section that comes first, is a notice.
"""
from ..errors import close_matches

ACTIVATION_FAMILIES = ("ActivationFunction", "QAct", "QActSolver")
N2D2_KINDS = ("Conv", "Fc", "BatchNorm", "Pool", "Dropout", "LRN")


def family(key):
    """The selector a key belongs to: ``QAct.Range`` -> ``QAct``, ``QAct`` -> ``QAct``."""
    return key.split(".", 1)[0]


def own_keys(section):
    """The section's keys a cell could read (``$`` variables and ``_`` build keys left out)."""
    return [k for k in section.keys() if not k.startswith(("$", "_"))]


def activation_keys(section):
    return [k for k in own_keys(section) if family(k) in ACTIVATION_FAMILIES]


def block_types():
    """Every ``X`` of a valid ``[<onnx>:X_def]``: cell types and activation functions."""
    from ..cells import CELLS
    from ..cells.activation_functions import ACTIVATIONS
    from .cells import OnnxTensorCell
    return set(CELLS.names()) | set(ACTIVATIONS.names()) | {OnnxTensorCell.type_name}


class Overrides:
    """The sections of one import: ``configure`` (a cell, before it is built), ``drops`` and
    ``merged`` (an activation node), ``finish`` (every cell's activation, once the walk is
    done); ``notices`` collects the sentences for the user."""

    def __init__(self, document, onnx_name, onnx_init, model):
        self.document, self.onnx_name, self.onnx_init = document, onnx_name, onnx_init
        self.node_ops = {n.output[0]: n.op_type for n in model.graph.node if n.output}
        self.looked_up = set()     # section names a lookup found
        self.cell_sections = {}    # cell name -> the section applied to it
        self.activations = {}      # cell name -> (activation node output, N2D2 activation type)
        self.notices = []

    def block(self, kind):
        return f"{self.onnx_name}:{kind}_def"

    def lookup(self, name):
        if self.document is None or name not in self.document:
            return None
        self.looked_up.add(name)
        return self.document.section(name)

    # -------------------------------------------------------------- cells
    def configure(self, cell, node, kind=None):
        """Apply the cell's section (fillers, solvers, QWeight, config) before ``cell`` is
        built; its activation keys wait for ``finish``."""
        section = self.lookup(cell.name) or self.lookup(self.block(kind or cell.type_name))
        if section is None:
            return
        if "Input" in section and section.name == cell.name:
            raise section.error(f"section [{cell.name}] has an Input key, but an ONNX node "
                                f"of the same name exists in [{self.onnx_name}]", key="Input")
        for key in own_keys(section):
            problem = self.cell_key_problem(cell, node, section, key)
            if problem:
                raise section.error(problem, key=key)
        keep, cell.section = cell.section, section
        try:
            if cell.filler_roles:
                cell.read_fillers(section)
            cell.read_solvers(section)
            if cell.has_qweight and "QWeight" in section:
                cell.read_qweight(section)
            cell.apply_config(section)
            cell.check_required_keys(section)
        finally:
            cell.section = keep
        section.mark_all_read()
        self.cell_sections[cell.name] = section

    def cell_key_problem(self, cell, node, section, key):
        """Why ``key`` of ``section`` cannot configure ``cell`` (None: it can)."""
        kind = f"{cell.type_name} cells"
        if key == "ConfigSection" or key.startswith("ConfigSection("):
            return None
        selector = family(key)
        if selector != key and selector not in section:
            return f"{key} without {selector}= in this section applies to nothing"
        if selector in ACTIVATION_FAMILIES:
            return "QActSolver without QAct= applies to nothing" \
                if selector == "QActSolver" and "QAct" not in section else None
        if selector in ("QWeight", "QWeightSolver"):
            if not cell.has_qweight:
                return f"{kind} have no weights to quantize (cell '{cell.name}')"
            return "QWeightSolver without QWeight= applies to nothing" \
                if selector == "QWeightSolver" and "QWeight" not in section else None
        if selector.endswith("Filler") and selector != "Filler":
            role = selector[:-len("Filler")]
            if role not in cell.filler_roles:
                return f"{kind} have no {role} to fill (cell '{cell.name}')"
            if self.onnx_init and role in onnx_roles(node):
                return (f"node '{node.output[0]}' ({node.op_type}) gives the {role.lower()} "
                        f"values and ONNX_init=1 loads them over what {selector} fills: set "
                        f"ONNX_init=0 in [{self.onnx_name}] for fillers to apply")
            return None
        if selector == "Solvers" or selector.endswith("Solver"):
            role = selector[:-len("Solver")]
            if not cell.solver_roles:
                return f"{kind} have nothing to learn (cell '{cell.name}')"
            if selector != "Solvers" and role not in cell.solver_roles:
                return (f"{kind} have no {selector}; theirs: Solvers, "
                        f"{', '.join(r + 'Solver' for r in cell.solver_roles)}")
            return None
        declared = cell.find_key(key)
        if declared is not None and declared.config:
            return (f"{key} is a cell parameter: N2D2 reads those from a ConfigSection "
                    f"(ConfigSection=<name>, then {key}=... in [<name>]), not from this section")
        if declared is not None or key in ("Type", "Model", "DataType") or \
                (cell.uses_mapping and key.startswith(("Mapping.", "Mapping("))):
            return (f"{key} cannot be overridden: the import takes the {kind[:-1]}'s structure "
                    f"from node '{node.output[0]}' ({node.op_type}), its model from "
                    f"DefaultModel")
        return (f"unknown key '{key}' for the imported {kind[:-1]} '{cell.name}'"
                f"{close_matches(key, allowed_keys(cell))}")

    # -------------------------------------------------------------- activations
    def drops(self, node):
        """N2D2: a section named after an activation node without ``ActivationFunction`` drops
        the activation. True when that happens (a warning is recorded)."""
        out = node.output[0]
        section = self.lookup(out)
        if section is None or "ActivationFunction" in section:
            return False
        keys = own_keys(section)
        if keys:
            message = (f"{keys[0]} in a section without ActivationFunction: N2D2 then drops "
                       f"the {node.op_type} node '{out}' and ignores the rest; write "
                       f"ActivationFunction=Rectifier (or the activation to keep) with it")
            raise section.error(message, key=keys[0])
        self.notices.append(f"Warning: section [{out}] has no ActivationFunction: the "
                            f"{node.op_type} is dropped, as N2D2 does")
        section.mark_all_read()
        return True

    def merged(self, cell, node, activation):
        """The ONNX activation ``activation`` of ``node`` is now that of ``cell`` (merged into
        it, or ``cell`` is the Activation cell made for it)."""
        out = node.output[0]
        self.activations[cell.name] = (out, activation.type_name)
        section = self.lookup(out)
        if section is not None and cell.name != out:
            self.check_activation_keys(section, f"it sets the activation of node '{out}' "
                                                f"({node.op_type}), merged into cell "
                                                f"'{cell.name}'")

    def check_activation_keys(self, section, why):
        for key in own_keys(section):
            if family(key) not in ACTIVATION_FAMILIES:
                raise section.error(f"{key} cannot apply here: {why}, and only "
                                    f"ActivationFunction, QAct, QActSolver (and their "
                                    f"'.' keys) can", key=key)
            if family(key) != key and family(key) not in section:
                raise section.error(f"{key} without {family(key)}= in this section applies "
                                    f"to nothing", key=key)
        section.mark_all_read()

    def finish(self, cells):
        """Set every cell's activation from the first section of the three (module
        docstring) that holds activation keys; notices for sections that set nothing."""
        won, lost = set(), {}
        for name, cell in cells.items():
            candidates = []
            node_out, kind = self.activations.get(name, (None, None))
            if node_out is not None and node_out in self.looked_up:
                candidates.append(self.document.section(node_out))
            own = self.cell_sections.get(name)
            if own is not None and activation_keys(own):
                candidates.append(own)
            if kind is not None:
                block = self.lookup(self.block(kind))
                if block is not None:
                    self.check_activation_keys(block, f"[{block.name}] sets the {kind} "
                                                      f"activations the import merges")
                    candidates.append(block)
            candidates = [s for i, s in enumerate(candidates)
                          if activation_keys(s) and s not in candidates[:i]]
            if not candidates:
                continue
            self.set_activation(cell, candidates[0])
            won.add(candidates[0].name)
            for other in candidates[1:]:
                lost.setdefault(other.name, []).append((name, candidates[0].name))
        for name, places in lost.items():
            if name not in won:
                cell, winner = places[0]
                self.notices.append(
                    f"Notice: the activation keys of [{name}] set no cell: each of the "
                    f"{len(places)} it would apply to takes its activation from a section that "
                    f"comes first (cell '{cell}': [{winner}])")

    def set_activation(self, cell, section):
        keep, cell.section = cell.section, section
        try:
            if "ActivationFunction" in section:
                cell.read_activation(section)
            if "QAct" in section:
                cell.read_qact(section)
            cell.check_required_keys(section)
        finally:
            cell.section = keep

    # -------------------------------------------------------------- sections
    def check_sections(self):
        """Before the walk: ``[<onnx>:X]`` sections must be one of the blocks; sections that
        inherit a block must be named after a node (**difference from N2D2**, which only
        prints 'Unused section')."""
        if self.document is None:
            return
        prefix = f"{self.onnx_name}:"
        blocks = {self.block(t) for t in block_types()}
        outputs = self.node_ops
        for section in self.document:
            if section.name in outputs:
                continue
            if section.name.startswith(prefix) and section.name not in blocks:
                raise section.error(
                    f"[{section.name}] overrides nothing: ONNX override sections are named after "
                    f"a node's first output ([<output>]"
                    f"{close_matches(section.name[len(prefix):], outputs)}) or are a block "
                    f"[{prefix}<Type>_def] with <Type> a cell type "
                    f"({', '.join(N2D2_KINDS)}, ElemWise, ...) or an activation (Rectifier, "
                    f"Logistic, ...){close_matches(section.name, blocks)} (N2D2 would only "
                    f"print 'Unused section')")
            inherits = [b for b in section.bases if b in blocks]
            if inherits and "Input" not in section and section.name not in blocks:
                raise section.error(
                    f"[{section.name}] inherits [{inherits[0]}] but no node of "
                    f"[{self.onnx_name}] has the output '{section.name}'"
                    f"{close_matches(section.name, outputs)} (N2D2 would only print "
                    f"'Unused section')")

    def check_unused(self):
        """After the walk: a section named after a node that made no cell is an error; a
        block that configured nothing is a notice."""
        if self.document is None:
            return
        prefix = f"{self.onnx_name}:"
        for section in self.document:
            name = section.name
            if name in self.looked_up:
                continue
            if name in self.node_ops:
                raise section.error(
                    f"[{name}] names node '{name}' ({self.node_ops[name]}), which the import "
                    f"turns into no cell (a view of its input, a constant, an ignored or "
                    f"merged node): its keys cannot apply")
            if name.startswith(prefix) and name.endswith("_def"):
                self.notices.append(f"Notice: [{name}] applies to no cell of "
                                    f"[{self.onnx_name}] (the model has no such cell)")


def onnx_roles(node):
    """The filler roles whose values node ``node`` gives (Conv, Gemm, MatMul, ConvTranspose:
    the weights, and the bias when its third input is there)."""
    roles = {"Weights"}
    if len(node.input) > 2 and node.input[2]:
        roles.add("Bias")
    return roles


def allowed_keys(cell):
    keys = ["ConfigSection", *ACTIVATION_FAMILIES]
    keys += [f"{role}Filler" for role in cell.filler_roles]
    if cell.solver_roles:
        keys += ["Solvers"] + [f"{role}Solver" for role in cell.solver_roles]
    if cell.has_qweight:
        keys += ["QWeight", "QWeightSolver"]
    return keys


__all__ = ["Overrides", "ACTIVATION_FAMILIES", "activation_keys", "block_types"]
