#!/usr/bin/env python3
"""The peer for `cargo bench -p server --bench moments`: PySceneDetect's AdaptiveDetector with
its defaults on one video, timed. Prints one JSON line: frames, seconds, cuts (first frames of
new scenes).

    pip install scenedetect opencv-python-headless
    python3 scripts/bench_scenedetect.py VIDEO
"""
import json
import sys
import time

from scenedetect import SceneManager, open_video
from scenedetect.detectors import AdaptiveDetector


def main() -> None:
    path = sys.argv[1]
    started = time.perf_counter()
    video = open_video(path)  # OpenCV backend, as PySceneDetect's default
    manager = SceneManager()
    manager.add_detector(AdaptiveDetector())
    frames = manager.detect_scenes(video)
    seconds = time.perf_counter() - started
    scenes = manager.get_scene_list()
    cuts = [start.get_frames() for start, _ in scenes[1:]]
    print(json.dumps({"frames": frames, "seconds": seconds, "cuts": cuts}))


if __name__ == "__main__":
    main()
