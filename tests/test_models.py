import copy
import random

import pytest
import torch
import torchvision
from torch import nn

from st_app.core.models import build_model
from st_app.core.plan import SubnetPlan, ordered_space


def test_full_plan_is_bit_identical(tiny_model):
    tiny_model.eval()
    x = torch.randn(6, 1, 8, 8)
    assert torch.equal(tiny_model(x), tiny_model(x, tiny_model.layout.full_plan()))
    tiny_model.train()
    torch.manual_seed(1)
    assert torch.equal(tiny_model(x), tiny_model(x, tiny_model.layout.full_plan()))


class _Dropped(nn.Module):
    def __init__(self, block):
        super().__init__()
        self.block = block

    def forward(self, x):
        return self.block(x, run_branch=False)


def _sequential(model, plan):
    layers = [model.conv1, model.bn1, model.relu, model.maxpool]
    for s, stage in enumerate(plan.stages):
        entry = model.layout.stages[s][0]
        if entry not in stage and model.blocks[entry].downsample is not None:
            layers.append(_Dropped(model.blocks[entry]))
        layers.extend(model.blocks[b] for b in stage)
    layers += [model.avgpool, nn.Flatten(1), model.fc]
    return nn.Sequential(*layers)


@pytest.mark.parametrize("text", ["0|3,4|6", "0,2,1|3,5|6,8,7", "1|4,5|7", "0,1,2||6"])
def test_plan_forward_equals_hand_built_sequential(tiny_model, text):
    tiny_model.eval()
    plan = SubnetPlan.parse(text, tiny_model.layout)
    x = torch.randn(5, 1, 8, 8)
    assert torch.allclose(tiny_model(x, plan), _sequential(tiny_model, plan)(x), atol=1e-6)
    assert not torch.allclose(tiny_model(x, plan), tiny_model(x))


def test_dropped_projection_block_keeps_its_shortcut(tiny_model):
    tiny_model.eval()
    plan = tiny_model.layout.full_plan().delete(3)
    x = torch.randn(2, 1, 8, 8)
    feats = tiny_model.forward_stem(x)
    feats = tiny_model.forward_stage(feats, 0)
    feats = torch.relu(tiny_model.blocks[3].downsample(feats))
    for b in (4, 5):
        feats = tiny_model.blocks[b](feats)
    for b in (6, 7, 8):
        feats = tiny_model.blocks[b](feats)
    assert torch.allclose(tiny_model.forward_head(feats), tiny_model(x, plan), atol=1e-6)


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_prefix_sharing_matches_plain_forward(tiny_model, mode):
    tiny_model.train(mode == "train")
    x = torch.randn(8, 1, 8, 8)
    with torch.no_grad():
        _, taps = tiny_model.forward_with_taps(x)
        plans = ordered_space(tiny_model.layout) + [tiny_model.layout.full_plan().swap(1, 2).delete(7)]
        for plan in plans:
            assert torch.allclose(tiny_model.forward_from_taps(taps, plan), tiny_model(x, plan), atol=1e-5), plan


@pytest.mark.parametrize("arch,size", [("resnet18", 64), ("resnet50", 64), ("resnext50_32x4d", 64),
                                       ("densenet121", 64), ("vit_b_32", 224)])
def test_torchvision_weights_load_unchanged(arch, size):
    tv = getattr(torchvision.models, arch)(weights=None, num_classes=7)
    if hasattr(tv, "heads"):  # torchvision zero-initialises a ViT's head: equal logits would prove nothing
        torch.nn.init.normal_(tv.heads.head.weight, std=0.05)
    ours = build_model(arch, num_classes=7, in_channels=3, image_size=size)
    ours.load_state_dict(tv.state_dict())  # strict: names and shapes identical
    tv.eval(), ours.eval()
    x = torch.randn(2, 3, size, size)
    assert torch.equal(tv(x), ours(x)) and tv(x).abs().max() > 0


def test_cifar_resnets_adapt_to_the_data():
    for arch, blocks in [("resnet20", 9), ("resnet32", 15), ("resnet56", 27), ("resnet110", 54)]:
        m = build_model(arch, num_classes=100, in_channels=3, image_size=32)
        assert len(m.blocks) == blocks
        assert m.layout.depths == (blocks // 3,) * 3
    m = build_model("resnet20", num_classes=10, in_channels=1, image_size=8)
    assert m(torch.randn(1, 1, 8, 8)).shape == (1, 10)
    assert [b.shape.changes_shape for b in m.blocks] == [False, False, False, True, False, False, True, False, False]
    with pytest.raises(ValueError, match="unknown model"):
        build_model("resnet21")


def test_parameters_and_flops_of_plans():
    m = build_model("resnet20", num_classes=10, in_channels=3, image_size=32)
    full = m.layout.full_plan()
    assert m.plan_parameters(full) == sum(p.numel() for p in m.parameters())
    assert 0.26e6 < m.plan_parameters(full) < 0.28e6  # He et al.: 0.27M
    assert 39e6 < m.plan_flops(full) < 43e6  # ~41M multiply-adds at 32x32
    small = SubnetPlan.from_depths(m.layout, [1, 1, 1])
    assert m.plan_parameters(small) < m.plan_parameters(full)
    assert m.plan_flops(small) < m.plan_flops(full) / 2
    dropped_entry = full.delete(3)
    projection = sum(p.numel() for p in m.blocks[3].downsample.parameters())
    branch = sum(p.numel() for p in m.blocks[3].parameters()) - projection
    assert m.plan_parameters(full) - m.plan_parameters(dropped_entry) == branch


def test_plan_of_another_layout_is_rejected(tiny_model):
    other = build_model("resnet32", 10, 1, 8)
    with pytest.raises(ValueError, match="another network layout"):
        tiny_model(torch.randn(1, 1, 8, 8), other.layout.full_plan())


def test_deepcopy_keeps_working(tiny_model):
    twin = copy.deepcopy(tiny_model)
    plan = SubnetPlan.sample(twin.layout, random.Random(0))
    twin.eval(), tiny_model.eval()
    x = torch.randn(2, 1, 8, 8)
    assert torch.equal(twin(x, plan), tiny_model(x, plan))
