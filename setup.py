"""n2d2py: N2D2's INI workflow (train, quantize, fuse, export) in Python on NumPy/CuPy."""
from setuptools import find_packages, setup

setup(
    name="n2d2py",
    version="0.1.0",
    description="Train, quantize (SAT/LSQ), fuse and export N2D2 INI networks with NumPy/CuPy",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="CeCILL-C (vendored N2D2 INI files, tests/data/n2d2); CC BY-SA 3.0 (bundled MNIST subset)",
    python_requires=">=3.10",
    packages=find_packages(include=["n2d2py", "n2d2py.*"]),
    package_data={"n2d2py": ["data/mnist5k/*.gz", "data/mnist5k/*.txt"]},
    install_requires=[
        "numpy>=1.24",
        "opencv-python-headless>=4.8",
        "onnx>=1.15",
        "matplotlib>=3.7",
        "tqdm>=4.60",
        "threadpoolctl>=3.1",
        "filelock>=3.12",
        # oneDNN's direct convolution kernels (functions/_onednn.py), CPU-only, GNU OpenMP; the
        # GEMM kernels run wherever it does not install or load
        "onednn-cpu-gomp==2023.2.0; platform_system == 'Linux' and platform_machine == 'x86_64'",
    ],
    extras_require={
        "gpu": ["cupy-cuda12x"],
        # data-parallel training (docs/DISTRIBUTED.md): mpi4py over the MPICH wheel, no system MPI
        "mpi": ["mpi4py>=4.0", "mpich"],
        "test": ["pytest>=7", "hypothesis>=6"],
        # the PyTorch peers of the ONNX tests (optional: those tests skip without them)
        "pytorch": ["torch", "torchvision", "onnxruntime", "onnxscript"],
    },
    entry_points={"console_scripts": ["n2d2py=n2d2py.cli:main"]},
)
