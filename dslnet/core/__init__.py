"""The bottom layer: tensor types, symbolic dimensions, source spans and diagnostics.

Everything else imports from here; nothing here imports the rest of dslnet.
"""
