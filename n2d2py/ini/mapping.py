"""Hand-written connection tables ``Mapping(<parent>)=`` (docs/INI.md §6,
"Connection maps").

In the INI they are multi-line values glued by backslash continuations (the space before each
backslash separates the numbers), one row per input channel and one column per output:

    Mapping(pool1)=\\
    1 0 0 0 1 1 \\
    ...
"""


def parse_mapping_matrix(section, key, n_rows, n_cols):
    """The 0/1 matrix of ``section``'s ``key`` as ``n_rows`` lists of ``n_cols`` bools.

    ``n_rows`` is the parent's channel count and ``n_cols`` the cell's NbOutputs. A value other
    than 0/1, or a count that is not ``n_rows * n_cols``, is an IniError naming the place."""
    words = section.get(key).split()
    for index, word in enumerate(words):
        if word not in ("0", "1"):
            row, col = divmod(index, n_cols) if n_cols else (0, index)
            raise section.error(f"mapping value '{word}' at row {row + 1}, column {col + 1} "
                                "must be 0 or 1", key=key)
    if len(words) != n_rows * n_cols:
        raise section.error(f"mapping table has {len(words)} values, expected {n_rows} rows "
                            f"(input channels) x {n_cols} columns (outputs) = "
                            f"{n_rows * n_cols}", key=key)
    return [[word == "1" for word in words[r * n_cols:(r + 1) * n_cols]] for r in range(n_rows)]
