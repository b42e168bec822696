"""Reference pipelines and their deterministic data generators (run: ``headrace run examples/recipe_stream``).

A package, so ``examples/recipe_stream:pipeline`` loads as ``examples.recipe_stream`` and the
examples can share helpers such as :mod:`examples.drift`.
"""
