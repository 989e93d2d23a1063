import numpy as np
import pytest
import torch

from facelandmarks_smt.preprocess import (crop_matrix, invert_affine, landmark_box, normalise_crops, square_box,
                                          transform_points, warp_crop)


def test_square_box_and_corners_map_to_pixel_edges():
    box = [10, 20, 50, 100]  # w 40, h 80
    cx, cy, side = square_box(box, 1.5)
    assert (cx, cy, side) == (30.0, 60.0, 120.0)
    m = crop_matrix(box, 1.5, 256)
    corners = np.array([[cx - side / 2, cy - side / 2], [cx + side / 2, cy + side / 2]])
    np.testing.assert_allclose(transform_points(corners, m), [[-0.5, -0.5], [255.5, 255.5]], atol=1e-9)


def test_round_trip_random_boxes_and_rotations():
    rng = np.random.default_rng(0)
    for _ in range(200):
        x1, y1 = rng.uniform(-50, 500, 2)
        box = [x1, y1, x1 + rng.uniform(5, 300), y1 + rng.uniform(5, 300)]
        m = crop_matrix(box, rng.uniform(1.1, 2.0), 256, angle=rng.uniform(-180, 180), scale=rng.uniform(0.8, 1.2),
                        shift=tuple(rng.uniform(-0.1, 0.1, 2)), flip=bool(rng.integers(2)))
        pts = rng.uniform(-100, 800, (68, 2))
        back = transform_points(transform_points(pts, m), invert_affine(m))
        assert np.abs(back - pts).max() < 1e-3


def test_rotation_direction_and_flip():
    box = [0, 0, 99, 99]
    m = crop_matrix(box, 1.0, 100, angle=90)
    centre = transform_points(np.array([[49.5, 49.5]]), m)
    np.testing.assert_allclose(centre, [[49.5, 49.5]], atol=1e-9)
    # a point right of centre goes above centre (counter-clockwise on screen)
    p = transform_points(np.array([[79.5, 49.5]]), m)[0]
    assert p[1] < 49.5 and abs(p[0] - 49.5) < 1e-6
    mf = crop_matrix(box, 1.0, 100, flip=True)
    plain = transform_points(np.array([[10.0, 20.0]]), crop_matrix(box, 1.0, 100))
    flipped = transform_points(np.array([[10.0, 20.0]]), mf)
    np.testing.assert_allclose(flipped[0, 0], 99 - plain[0, 0])
    np.testing.assert_allclose(flipped[0, 1], plain[0, 1])


def test_warp_matches_points():
    img = np.zeros((200, 300, 3), np.uint8)
    img[120, 80] = 255
    m = crop_matrix([50, 60, 150, 180], 1.3, 256, angle=17, scale=1.05)
    crop = warp_crop(img, m, 256)
    ys, xs = np.nonzero(crop[:, :, 0])
    w = crop[ys, xs, 0].astype(float)
    found = np.array([(xs * w).sum() / w.sum(), (ys * w).sum() / w.sum()])
    expected = transform_points(np.array([[80.0, 120.0]]), m)[0]
    assert np.abs(found - expected).max() < 0.5


def test_transform_points_torch_batched():
    m = np.stack([crop_matrix([0, 0, 10, 10], 1.5, 64, angle=a) for a in (0, 30)])
    pts = torch.rand(2, 5, 2, dtype=torch.float64) * 10
    out = transform_points(pts, m)
    for i in range(2):
        np.testing.assert_allclose(out[i].numpy(), transform_points(pts[i].numpy(), m[i]), atol=1e-12)


def test_landmark_box_and_normalise():
    pts = np.array([[1.0, 5.0], [3.0, 2.0], [2.0, 9.0]])
    np.testing.assert_array_equal(landmark_box(pts), [1, 2, 3, 9])
    crops = np.full((1, 2, 2, 3), 255, np.uint8)
    x = normalise_crops(crops, (0.5, 0.5, 0.5), (0.5, 0.25, 1.0))
    assert x.shape == (1, 3, 2, 2)
    np.testing.assert_allclose(x[0, :, 0, 0].numpy(), [1.0, 2.0, 0.5])
    with pytest.raises(TypeError):
        normalise_crops(crops.astype(np.float32), (0, 0, 0), (1, 1, 1))


def test_numpy_and_torch_normalisation_give_the_same_numbers():
    """The numpy path (inference on CPU, no torch threads) and the torch path (training) are one formula."""
    crops = np.random.default_rng(0).integers(0, 256, (3, 16, 12, 3), dtype=np.uint8)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    a = normalise_crops(crops, mean, std)
    b = normalise_crops(torch.from_numpy(crops), mean, std)
    assert a.shape == b.shape == (3, 3, 16, 12) and a.dtype == b.dtype == torch.float32
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=0, atol=1e-6)
    assert a.is_contiguous()
    with pytest.raises(ValueError, match="N, H, W, 3"):
        normalise_crops(crops[0], mean, std)
