"""(to be written: see docs/ARCHITECTURE.md)"""
__all__ = []
