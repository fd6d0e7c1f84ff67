"""ONNX tests: the ``slow`` marker (light zoo models over ~20 s each in NumPy)."""


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: ONNX model taking over ~20 s on one core")
