"""N2D2's Python API over n2d2py (``import n2d2py as n2d2``; ``from n2d2py import n2d2_ip``).

The namespaces of N2D2's API are modules of the package: ``n2d2.database``,
``n2d2.provider``, ``n2d2.transform``, ``n2d2.cells`` (and ``n2d2.cells.nn``),
``n2d2.activation``, ``n2d2.solver``, ``n2d2.filler``, ``n2d2.target``, ``n2d2.quantizer``
(``n2d2_ip.quantizer``), ``n2d2.export``, plus ``n2d2.Tensor``, ``n2d2.Interface``,
``n2d2.ConfigSection``, ``n2d2.global_variables``. Each is a thin layer here (``api/``) over
one implementation — the cells, quantizers, solvers, fillers, databases and transformations an
INI builds — so a network written in Python is the network the same INI gives, value for
value. docs/PYTHON_API.md maps N2D2's API to ours and lists what is not covered.
"""
