"""MSD Studio core: modality-specific distillation (Jin et al., Findings of EMNLP 2021).

The library never imports streamlit; the dashboard in ``app/`` is a view of it.
"""

__version__ = "0.1.0"
