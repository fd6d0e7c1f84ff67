"""Connection maps between a parent's channels and a cell's outputs (docs/INI.md §6,
"Connection maps").

A map is a boolean array ``mask[output, channel]`` (NumPy, host side: it is structure, not data).
``None`` stands for full connectivity. For each parent, in this order:

1. ``Mapping.NbGroups`` or ``Mapping.ChannelsPerGroup`` (not both): group connectivity;
2. ``Mapping(<parent>)=<matrix>``: one row per input channel, one column per output;
3. any other ``Mapping.*`` / ``Mapping(<parent>).*`` key: a pattern (Size/Stride/Offset/NbIterations);
4. else full connectivity.
"""
import difflib
import re

import numpy

from ..errors import IniError
from ..ini.convert import to_int

PATTERN_DEFAULTS = {"SizeX": 1, "SizeY": 1, "StrideX": 1, "StrideY": 1,
                    "OffsetX": 0, "OffsetY": 0, "NbIterations": 0}
GROUP_KEYS = ("NbGroups", "ChannelsPerGroup")
#: every sub-key N2D2 reads after ``Mapping.``; after ``Mapping(<parent>).`` only the pattern ones
PATTERN_KEYS = ("Size", "SizeX", "SizeY", "Stride", "StrideX", "StrideY",
                "Offset", "OffsetX", "OffsetY", "NbIterations")
SUB_KEYS = PATTERN_KEYS + GROUP_KEYS
_PARENT_KEY = re.compile(r"Mapping\(([^()]*)\)(?:\.(.*))?$", re.DOTALL)


def group_map(nb_outputs, nb_channels, nb_groups):
    """Group connectivity: group g gets channels [g*C/G, (g+1)*C/G) and
    ``(O - offset) // (G - g)`` consecutive outputs (N2D2's sharing when G does not divide O)."""
    mask = numpy.zeros((nb_outputs, nb_channels), dtype=bool)
    per_group, offset = nb_channels // nb_groups, 0
    for g in range(nb_groups):
        count = (nb_outputs - offset) // (nb_groups - g)
        mask[offset:offset + count, g * per_group:(g + 1) * per_group] = True
        offset += count
    return mask


def clean_groups(mask):
    """``G`` if ``mask`` is exactly ``group_map(O, C, G)`` for some G > 1 (depthwise included),
    else 0. Such maps are stored as grouped weights (C/G channels per kernel)."""
    if mask is None:
        return 0
    nb_outputs, nb_channels = mask.shape
    per_output = mask.sum(axis=1)
    if per_output[0] == 0 or nb_channels % per_output[0]:
        return 0
    groups = nb_channels // int(per_output[0])
    if groups <= 1 or groups > nb_outputs:
        return 0
    return groups if numpy.array_equal(mask, group_map(nb_outputs, nb_channels, groups)) else 0


def pattern_map(nb_outputs, nb_channels, size_x, size_y, stride_x, stride_y,
                offset_x, offset_y, nb_iterations):
    """N2D2's pattern: a (SizeX outputs × SizeY channels) patch set true, moved by the strides
    ``NbIterations`` times, indices wrapping modulo O and C. Zero sizes/iterations mean "all"."""
    size_x = size_x or nb_outputs
    size_y = size_y or nb_channels
    nb_iterations = nb_iterations or max(nb_outputs, nb_channels)
    mask = numpy.zeros((nb_outputs, nb_channels), dtype=bool)
    steps = numpy.arange(nb_iterations)
    xs = (offset_x + steps[:, None] * stride_x + numpy.arange(size_x)[None, :]) % nb_outputs
    ys = (offset_y + steps[:, None] * stride_y + numpy.arange(size_y)[None, :]) % nb_channels
    mask[xs[:, :, None], ys[:, None, :]] = True
    return mask


class MappingSpec:
    """The ``Mapping*`` keys of a cell section, resolved per parent once channel counts are known."""

    def __init__(self, values=None, section=None):
        self.values = dict(values or {})  # "Mapping.Size" -> "1", "Mapping(pool1)" -> matrix text
        self.section = section

    @classmethod
    def from_section(cls, section, parents=None):
        keys = [k for k in section.keys() if k.startswith("Mapping.") or k.startswith("Mapping(")]
        spec = cls({k: section.get(k) for k in keys}, section)
        for key in keys:
            spec.check_key(key, parents)
        return spec

    def check_key(self, key, parents=None):
        """Raise an IniError for a ``Mapping*`` key N2D2 would not read: it would still switch
        the layer to a pattern map (or be ignored), so a misspelt sub-key or parent name
        silently changes the network. ``parents``: the cell's inputs (``env`` for the stimuli)."""
        if key.startswith("Mapping."):
            sub, allowed, scope = key[len("Mapping."):], SUB_KEYS, "Mapping."
        else:
            match = _PARENT_KEY.match(key)
            if match is None:
                raise self._error("expected Mapping(<parent>)=<0/1 matrix> or "
                                  "Mapping(<parent>).<key>=<value>", key)
            if parents is not None and match.group(1) not in parents:
                raise self._error(f"'{match.group(1)}' is not an input of this cell (inputs: "
                                  f"{', '.join(parents)}; the stimuli provider is 'env')", key)
            if match.group(2) is None:
                return
            sub, allowed = match.group(2), PATTERN_KEYS
            scope = key[:len(key) - len(sub)]
        if sub in allowed:
            return
        if sub in GROUP_KEYS:
            raise self._error(f"{sub} is read only as Mapping.{sub} (for every parent), not per "
                              f"parent", key)
        hits = difflib.get_close_matches(sub, allowed, n=3, cutoff=0.6)
        did_you_mean = (f" (did you mean {', '.join(repr(scope + h) for h in hits)}?)"
                        if hits else "")
        raise self._error(f"unknown Mapping key '{sub}'{did_you_mean}; expected one of "
                          f"{', '.join(allowed)}", key)

    def _error(self, message, key):
        if self.section is not None:
            return self.section.error(message, key=key)
        return IniError(f"{key}: {message}")

    def _int(self, key):
        try:
            return to_int(self.values[key])
        except ValueError as exc:
            raise self._error(str(exc), key) from None

    def resolve(self, parent, nb_outputs, nb_channels):
        """Boolean ``mask[O, C]`` for ``parent`` or ``None`` (full connectivity)."""
        given = [k for k in GROUP_KEYS if f"Mapping.{k}" in self.values]
        if len(given) == 2:
            raise self._error("Mapping.NbGroups and Mapping.ChannelsPerGroup are exclusive",
                              "Mapping.NbGroups")
        if given:
            key = f"Mapping.{given[0]}"
            value = self._int(key)
            if value <= 0 or nb_channels % value:
                raise self._error(f"{nb_channels} input channels (parent {parent}) are not a "
                                  f"multiple of {given[0]}={value}", key)
            groups = value if given[0] == "NbGroups" else nb_channels // value
            if groups > nb_outputs:
                raise self._error(f"{groups} groups but only NbOutputs={nb_outputs}", key)
            return group_map(nb_outputs, nb_channels, groups)
        matrix_key = f"Mapping({parent})"
        if matrix_key in self.values:
            return self._matrix(matrix_key, nb_outputs, nb_channels)
        prefix = f"Mapping({parent})."
        if any(k.startswith("Mapping.") or k.startswith(prefix) for k in self.values):
            return pattern_map(nb_outputs, nb_channels,
                               *(self._pattern_value(parent, name) for name in PATTERN_DEFAULTS))
        return None

    def _pattern_value(self, parent, name):
        # "Size"/"Stride"/"Offset" set both X and Y; the per-parent keys win over Mapping.*
        names = (name, name[:-1]) if name[-1] in "XY" else (name,)
        for scope in (f"Mapping({parent}).", "Mapping."):
            for key in (scope + n for n in names):
                if key in self.values:
                    return self._int(key)
        return PATTERN_DEFAULTS[name]

    def _matrix(self, key, nb_outputs, nb_channels):
        words = self.values[key].split()
        for index, word in enumerate(words):
            if word not in ("0", "1"):
                row, col = divmod(index, nb_outputs) if nb_outputs else (0, index)
                raise self._error(f"mapping value '{word}' at row {row + 1}, column {col + 1} "
                                  f"must be 0 or 1", key)
        if len(words) != nb_outputs * nb_channels:
            raise self._error(f"expected a 0/1 matrix of {nb_channels} rows (input channels) x "
                              f"{nb_outputs} columns (outputs) = {nb_outputs * nb_channels} "
                              f"values, got {len(words)}", key)
        rows = numpy.array([w == "1" for w in words]).reshape(nb_channels, nb_outputs)
        return rows.T.copy()  # stored as mask[output, channel]
