"""Views of a graph for people: the summary table and the pictures (DOT, SVG, PNG).

Like the backends they read the IR and nothing above it; the driver offers them as
`Program.summary` and `Program.dot`, the CLI as `dslnet summary` and `dslnet graph`.
"""
