"""Hugging Face vision-language models: where they come from (``source``), their inputs
(``inputs``), their specs and settings (``spec``) and the classifiers around them (``adapters``)."""
