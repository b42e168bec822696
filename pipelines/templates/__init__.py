"""Files ``headrace new`` copies to start a pipeline package (``*.tmpl``, ``$name`` placeholders).

Shipped as package data so an installed headrace scaffolds without the source tree.
"""

__all__: list[str] = []  # data only: the templates are files, not names
