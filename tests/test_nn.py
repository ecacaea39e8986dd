import torch
import torch.nn.functional as F

from ganforge.nn import UpsampleConv2d


def test_upsample_conv_equals_nearest_upsample_then_conv():
    torch.manual_seed(0)
    layer = UpsampleConv2d(5, 7)
    x = torch.randn(3, 5, 6, 9, requires_grad=True)
    fused = layer(x)
    plain = F.conv2d(
        F.interpolate(x, scale_factor=2, mode="nearest"), layer.weight, layer.bias, padding=1
    )
    assert fused.shape == (3, 7, 12, 18)
    torch.testing.assert_close(fused, plain, atol=1e-5, rtol=1e-5)
    g = torch.randn_like(plain)
    gx_f, gw_f = torch.autograd.grad(fused, (x, layer.weight), g)
    gx_p, gw_p = torch.autograd.grad(plain, (x, layer.weight), g)
    torch.testing.assert_close(gx_f, gx_p, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(gw_f, gw_p, atol=1e-4, rtol=1e-4)


def test_upsample_conv_keeps_the_plain_conv_parameter_names():
    assert set(UpsampleConv2d(2, 3).state_dict()) == {"weight", "bias"}
