"""``easy-vqa``: the small real VQA set shipped by the PyPI package ``easy-vqa``
(64x64 shape images, template questions, 13 answers). Train and test as shipped;
``val`` is carved from train by image (no image is in both), with a fixed seed."""

from __future__ import annotations

import numpy as np

from .example import Example, ModalitySpec, MultimodalDataset


def make_easy_vqa(split: str, val_fraction: float, split_seed: int) -> MultimodalDataset:
    import easy_vqa

    answers = list(easy_vqa.get_answers())
    if split == "test":
        questions, ans, image_ids = easy_vqa.get_test_questions()
        paths = easy_vqa.get_test_image_paths()
        keep = range(len(questions))
    else:
        questions, ans, image_ids = easy_vqa.get_train_questions()
        paths = easy_vqa.get_train_image_paths()
        unique = np.array(sorted(set(image_ids)))
        rng = np.random.default_rng(split_seed)
        n_val = int(round(len(unique) * val_fraction))
        val_images = set(rng.permutation(unique)[:n_val].tolist())
        want_val = split == "val"
        keep = [i for i, im in enumerate(image_ids) if (im in val_images) == want_val]
    source_split = "test" if split == "test" else "train"
    examples = [
        Example(f"easy-vqa-{source_split}-{i}", {"image": paths[image_ids[i]], "text": questions[i]},
                answers.index(ans[i]),
                {"image_id": int(image_ids[i]), "source": f"easy_vqa {source_split} question {i}"})
        for i in keep
    ]
    modalities = [ModalitySpec("image", "image"), ModalitySpec("text", "text")]
    return MultimodalDataset("easy-vqa", split, modalities, answers, examples,
                             metric="accuracy", neutral_text="what is it?")
