"""Stateless differentiable ops (``import n2d2py.functions as F``): forward and backward side by side.

Each module lists its public functions in ``__all__``; this file only re-exports them.
"""
from .arith import *          # noqa: F401,F403
from .conv import *           # noqa: F401,F403
from .linear import *         # noqa: F401,F403
from .pool import *           # noqa: F401,F403
from .activation import *     # noqa: F401,F403
from .batchnorm import *      # noqa: F401,F403
from .dropout import *        # noqa: F401,F403
from .elementwise import *    # noqa: F401,F403
from .shape import *          # noqa: F401,F403
from .normalization import *  # noqa: F401,F403
from .softmax import *        # noqa: F401,F403
from .loss import *           # noqa: F401,F403
from .ste import *            # noqa: F401,F403
from .activation_ext import *  # noqa: F401,F403
from .layer_norm import *     # noqa: F401,F403
from .gather import *         # noqa: F401,F403
from .pool_dilated import *   # noqa: F401,F403
