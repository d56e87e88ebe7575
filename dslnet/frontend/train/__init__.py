"""`train` declarations in the front end: their settings (settings.py, setting_values.py)
and noise inputs (noise.py) read and checked, lowered (lower.py) into a typed plan
(plan.py) that the training runtime (dslnet.training) runs. Nothing here imports torch."""
