"""Files ``headrace new`` copies to start a pipeline package (``*.tmpl``, ``$name`` placeholders).

Shipped as package data so an installed headrace scaffolds without the source tree.
"""
