"""The method of docs/METHOD.md in one folder: losses (§3), objectives (§4), saliency measures and
Shapley values (§5–§6), weighting schemes (§7), and the table of teacher logits they read (§9).
Each registry maps a config name to an implementation whose docstring carries its formula."""
