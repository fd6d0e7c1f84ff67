"""Databases, transformations and the StimuliProvider: what N2D2's ``[database]`` and ``[sp]``
sections describe (docs/INI.md §7, docs/DATA.md).

``DATABASES`` and ``TRANSFORMATIONS`` are registries keyed by the INI ``Type``;
``database_from_ini(document)`` / ``database_from_section(section)`` build and load a database;
``StimuliProvider.from_ini(document, database)`` builds the input pipeline. The bundled MNIST
subset lives in ``data/mnist5k/`` (``BUNDLED_MNIST``).
"""
from .database import DATABASES, SETS, Database, database_from_ini, database_from_section
from .transformation import APPLY_TO, TRANSFORMATIONS, Transformation, transformation_from_section
from . import cifar, color, dir_database, geometric, mnist  # noqa: F401  (register the types)
from . import csv_database, gtsrb, ilsvrc2012, numpy_database  # noqa: F401
from .mnist import BUNDLED_MNIST
from .stimuli_provider import StimuliProvider

__all__ = ["DATABASES", "TRANSFORMATIONS", "SETS", "APPLY_TO", "BUNDLED_MNIST", "Database",
           "Transformation", "StimuliProvider", "database_from_ini", "database_from_section",
           "transformation_from_section"]
