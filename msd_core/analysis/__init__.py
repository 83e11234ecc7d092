"""Tables behind the pages: saliency explorer, run comparison, example previews, model catalog.
Plain pandas and dicts out; the pages only filter and draw."""
