"""Atari games ready for training: the `'atari'` environment type.

`Environment.create('atari', level='ALE/Pong-v5')` (or `make_atari(level)`
for the gymnasium env alone) applies what DQN and PPO papers, SB3's
`AtariWrapper` and CleanRL use: no sticky actions in the preprocessing's frame
skip (`frameskip=1` in ALE, `repeat_action_probability` kept at the game's
default), up to 30 no-op actions at reset, a frame skip of 4 with a max over
the last two frames, grayscale, a resize to 84x84 (gymnasium's
`AtariPreprocessing`), and the last 4 frames stacked on the channel axis
(gymnasium's `FrameStackObservation`, then moved channels last for
`conv2d`). The observation is a `uint8` Box `(84, 84, 4)` with bounds 0 and
255, so the default state preprocessing `linear_normalization` scales it
to [-2, 2] inside the network.

Frame stacking is done here, in the environment, not as a network layer:
the agent's memory then holds what the policy saw, and acting needs no state
between steps.

Needs the extra `kerasrl[atari]`: `ale-py` (which ships the game ROMs) and
`opencv-python-headless` (gymnasium's resize). Both are imported only when an
Atari environment is made.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kerasrl.environments.gymnasium import GymnasiumEnvironment, render_options
from kerasrl.errors import ArgumentError, NotSupportedError
from kerasrl.validation import check_int


def _require_extra() -> Any:
    try:
        import ale_py
        import cv2  # noqa: F401  (gymnasium's AtariPreprocessing resizes with it)
    except ImportError as exc:
        raise NotSupportedError(
            f"Atari environments need the extra kerasrl[atari] (ale-py and "
            f"opencv-python-headless): pip install 'kerasrl[atari]' ({exc})."
        ) from None
    return ale_py


def make_atari(level: str, frame_stack: int = 4, screen_size: int = 84, frame_skip: int = 4,
               noop_max: int = 30, terminal_on_life_loss: bool = False,
               **make_kwargs: Any) -> Any:
    """A gymnasium Atari env with the usual preprocessing, channels last.

    Args:
        level: An ALE id, e.g. `'ALE/Pong-v5'` or `'BreakoutNoFrameskip-v4'`.
        frame_stack: Frames stacked on the last axis.
        screen_size: Side of the square grayscale frames.
        frame_skip: Frames per action (the max of the last two is observed).
        noop_max: Most no-op actions at reset.
        terminal_on_life_loss: End the episode when a life is lost.
        **make_kwargs: More arguments of `gymnasium.make` (`render_mode`,
            `repeat_action_probability`, ...).

    Returns:
        The `gymnasium.Env`, observations `uint8 (screen_size, screen_size, frame_stack)`.

    Raises:
        NotSupportedError: the extra is not installed.
        ArgumentError: invalid arguments.
    """
    import gymnasium as gym

    ale_py = _require_extra()
    gym.register_envs(ale_py)
    where = "make_atari"
    frame_stack = check_int(frame_stack, "frame_stack", minimum=1, where=where)
    screen_size = check_int(screen_size, "screen_size", minimum=8, where=where)
    frame_skip = check_int(frame_skip, "frame_skip", minimum=1, where=where)
    noop_max = check_int(noop_max, "noop_max", minimum=0, where=where)
    if not isinstance(level, str):
        raise ArgumentError.invalid("level", "an ALE gymnasium id", level, where)
    try:
        env = gym.make(level, frameskip=1, **make_kwargs)
    except gym.error.Error as exc:
        raise ArgumentError.invalid("level", "an ALE gymnasium id such as 'ALE/Pong-v5'",
                                    f"{level} ({exc})", where) from None
    env = gym.wrappers.AtariPreprocessing(
        env, noop_max=noop_max, frame_skip=frame_skip, screen_size=screen_size,
        terminal_on_life_loss=bool(terminal_on_life_loss), grayscale_obs=True,
        scale_obs=False)
    env = gym.wrappers.FrameStackObservation(env, frame_stack)
    space = gym.spaces.Box(0, 255, (screen_size, screen_size, frame_stack), np.uint8)
    return gym.wrappers.TransformObservation(
        env, lambda frames: np.moveaxis(np.asarray(frames), 0, -1), space)


class AtariEnvironment(GymnasiumEnvironment):
    """`make_atari(level, ...)` as a kerasrl environment (registry key `'atari'`).

    Args:
        level: An ALE id (`'ALE/Pong-v5'`).
        frame_stack, screen_size, frame_skip, noop_max, terminal_on_life_loss:
            See `make_atari`.
        **kwargs: `GymnasiumEnvironment` arguments (`seed`, `visualize`,
            `visualize_directory`, ...).
    """

    def __init__(self, level: str, frame_stack: int = 4, screen_size: int = 84,
                 frame_skip: int = 4, noop_max: int = 30, terminal_on_life_loss: bool = False,
                 visualize: bool = False, visualize_directory: str | None = None,
                 **kwargs: Any):
        render = render_options(visualize, visualize_directory, "AtariEnvironment")
        self._atari = dict(level=level, frame_stack=frame_stack, screen_size=screen_size,
                           frame_skip=frame_skip, noop_max=noop_max,
                           terminal_on_life_loss=terminal_on_life_loss)
        # The window or the video recorder comes from the render mode given to make;
        # GymnasiumEnvironment wraps an instance in RecordVideo for visualize_directory.
        super().__init__(make_atari(**self._atari, **render),
                         visualize_directory=visualize_directory, **kwargs)

    def get_config(self) -> dict:
        """A spec that recreates the environment (`Environment.create(**config)`)."""
        return dict(environment="atari", **self._atari)
