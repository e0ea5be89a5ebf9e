"""Presets of the baseline runs: config values, not code paths.

``smoke`` exercises the whole chain (data, training, export, cards) on tiny inputs in well under a
minute; ``default`` trains the shipped baselines at the deployed resolutions to the end of schedules
whose learning curves level off (echo 60 + 20 epochs, cine 60 x 12 steps; 15-25 min per network on a
2-core CPU: the shorter 12 + 6 and 10 x 12 schedules stopped them early, U-net 3D at Dice .630 with a
class at .13 for the frame the app shows); ``paper`` follows the papers' sizes and epochs (for a
workstation or GPU).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from search.train.loop import TrainConfig


@dataclass(frozen=True)
class BaselinePreset:
    """Sizes and schedules of one baseline run.

    Attributes:
        name: Preset name.
        baselines: Registry names trained and exported by default.
        seed: Seeds data, splits, initialisation and augmentation.
        echo_cases: Phantom echo patients (split s1 / s2 / test by ``echo_split``).
        echo_render: ``render_echo_case`` options (frames, display size).
        echo_input: Model grid (H, W) for echo.
        echo_frame_step: Train on every k-th labelled frame.
        echo_seg_crop: Random crop (h, w) for segmentation training (None: whole frames).
        echo_split: Patient fractions: s1 trains segmentation, s2 trains QC, test scores both.
        seg_train / qc_train: Schedules of the two echo stages.
        cine_cases: Phantom cine patients (split train / test by ``cine_split``).
        cine_render: ``render_cine_case`` options.
        cine_input: Model grid (H, W) for cine.
        clip_length: Frames T per clip.
        cine_train: Schedule of cine training.
        max_test_clips: Cap on evaluated cine clips (3D inference is slow on a CPU).
        quantize: Try INT8 for segmentation models.
        latency_repeats: Timed runs per card.
        threads: torch intra-op threads for training.
        seg_restarts: Trainings of a segmentation net from a fresh initialisation after the first one, while a
            class's Dice on its training frames stays below .3 (a collapse; ``search.train.restarts``).
    """

    name: str
    baselines: tuple[str, ...]
    seed: int
    echo_cases: int
    echo_render: dict
    echo_input: tuple[int, int]
    echo_frame_step: int
    echo_seg_crop: tuple[int, int] | None
    seg_train: TrainConfig
    qc_train: TrainConfig
    cine_cases: int
    cine_render: dict
    cine_input: tuple[int, int]
    clip_length: int
    cine_train: TrainConfig
    max_test_clips: int
    quantize: bool
    latency_repeats: int
    threads: int = 1
    seg_restarts: int = 2
    echo_split: dict = field(default_factory=lambda: {"s1": 0.4, "s2": 0.4, "test": 0.2})
    cine_split: dict = field(default_factory=lambda: {"train": 0.8, "test": 0.2})


PRESETS: dict[str, BaselinePreset] = {
    "smoke": BaselinePreset(
        name="smoke", baselines=("unet8-resnet18", "unet3d-d3-if16"), seed=0,
        echo_cases=5, echo_render={"n_frames": 4, "size": 64}, echo_input=(64, 64), echo_frame_step=2, echo_seg_crop=None,
        seg_train=TrainConfig(epochs=1, batch_size=4, lr=2e-3, seed=0),
        qc_train=TrainConfig(epochs=1, batch_size=4, lr=1e-3, seed=1),
        cine_cases=3, cine_render={"n_frames": 4}, cine_input=(32, 32), clip_length=4,
        cine_train=TrainConfig(epochs=1, batch_size=2, lr=2e-3, seed=2, steps_per_epoch=2),
        max_test_clips=2, quantize=False, latency_repeats=5, seg_restarts=0,
    ),
    "default": BaselinePreset(
        name="default", baselines=("unet8-resnet18", "unet16-resnet18", "unet3d-d3-if16", "unet2d-d3-if16"), seed=0,
        echo_cases=40, echo_render={"n_frames": 30, "size": 256}, echo_input=(256, 256), echo_frame_step=3, echo_seg_crop=(128, 128),
        seg_train=TrainConfig(epochs=60, batch_size=8, lr=2e-3, seed=0),
        qc_train=TrainConfig(epochs=20, batch_size=8, lr=1e-3, seed=1),
        cine_cases=20, cine_render={"n_frames": 20}, cine_input=(128, 112), clip_length=20,
        cine_train=TrainConfig(epochs=60, batch_size=2, lr=3e-3, seed=2, steps_per_epoch=12),
        max_test_clips=16, quantize=True, latency_repeats=30, threads=2,
    ),
    "paper": BaselinePreset(
        name="paper", baselines=("unet8-resnet18", "unet16-resnet18", "unet2d-d5-if64", "unet2d-d3-if16",
                                 "unet3d-d4-if32", "unet3d-d3-if16"), seed=0,
        echo_cases=100, echo_render={"n_frames": 30, "size": 256}, echo_input=(256, 256), echo_frame_step=1, echo_seg_crop=None,
        seg_train=TrainConfig(epochs=80, batch_size=16, lr=1e-3, seed=0),
        qc_train=TrainConfig(epochs=80, batch_size=16, lr=1e-3, seed=1),
        cine_cases=100, cine_render={"n_frames": 30}, cine_input=(128, 112), clip_length=20,
        cine_train=TrainConfig(epochs=60, batch_size=4, lr=1e-3, seed=2),
        max_test_clips=400, quantize=True, latency_repeats=100, threads=4,
    ),
}


def get_preset(name: str) -> BaselinePreset:
    try:
        return PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}") from None
