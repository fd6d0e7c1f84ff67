"""Autograd: Variable/Parameter (variable.py), Function (function.py), gradient checks."""
from .function import Function
from .gradient_check import check_backward, numerical_grad
from .variable import Parameter, Variable, as_variable, grad_enabled, no_grad

__all__ = ["Function", "Variable", "Parameter", "as_variable", "no_grad", "grad_enabled",
           "check_backward", "numerical_grad"]
