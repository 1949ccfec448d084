"""relisten_spark: hybrid music recommendation as a batch scoring engine on Apache Spark."""

from setuptools import find_packages, setup

# pyspark is not a hard requirement: a cluster's runtime brings its own Spark, which installing
# the wheel must keep; `[local]` adds the pinned one. relisten_spark.compat declares the supported
# range (pyspark>=4.0,<4.2) and checks it at start.
INSTALL_REQUIRES = [
    "pandas>=2.2,<3",
    "pyarrow>=18",
    "numpy>=1.26,<3",
    "scipy>=1.11",
    "scikit-learn==1.7.2",
    "lightgbm==4.7.0",
    # compiled LightGBM inference (models/gbdt/compiled.py); lleaves 1.3 needs llvmlite's legacy
    # pass manager, gone from llvmlite 0.45 on
    "lleaves==1.3.0",
    "llvmlite==0.44.0",
    "deltalake==1.6.6",
    "PyYAML>=6.0",
    "pydantic>=2.7,<3",
    "mlflow==3.17.2",  # tracking and the model registry (relisten_spark.tracking)
    "psutil>=5.9",
    "plotly==7.1.0",
]

EXTRAS_REQUIRE = {
    # a local install also pins the numeric stack the ranges above leave open (a cluster keeps
    # its runtime's), so that a fresh `make install` computes with what the figures were taken on
    "local": ["pyspark==4.1.4", "numpy==2.4.6", "scipy==1.17.1", "pandas==2.3.3", "pyarrow==25.0.1"],
    "torch": ["torch==2.13.0"],
    # duckdb and polars: only the test that runs TABLES.md's reading examples uses them
    "dev": ["pytest>=8", "ruff>=0.6", "mypy==2.4.1", "duckdb==2.0.1", "polars==2.1.0"],
}

setup(
    name="relisten_spark",
    version="0.1.0",
    description="Hybrid music recommendation (LightGBM + JENN + F-ELU-Net) as a Spark batch engine",
    packages=find_packages(include=["relisten_spark", "relisten_spark.*"]),
    package_data={"relisten_spark": ["resources/*.txt"]},
    python_requires=">=3.11,<3.13",
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
    entry_points={"console_scripts": ["relisten=relisten_spark.cli:main"]},
)
