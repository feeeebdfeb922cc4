//! The saliency cases of `losses.json`: the oracle's tiny nets rebuilt from their parameters.

use burn::module::Param;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::MaxPool2dConfig;
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};
use serde_json::Value;

use super::{flatten, float_tensor, id, oracle_cases, Checker, Tolerance};
use semisono_nn::ops::int_tensor_to_vec;
use semisono_nn::saliency::vanilla_saliency;

/// Stride and padding of `name(...)` in the oracle's architecture string, e.g.
/// `conv1(3->4,k3,s1,p1,bias)`; PyTorch defaults (stride 1, padding k/2) when absent.
fn conv_geometry(architecture: &str, name: &str, kernel: usize) -> (usize, usize) {
    let (mut stride, mut padding) = (1, kernel / 2);
    if let Some(start) = architecture.find(&format!("{name}(")) {
        let args = &architecture[start + name.len() + 1..];
        let args = &args[..args.find(')').unwrap_or(args.len())];
        for token in args.split(',').map(str::trim) {
            let value = |prefix: &str| token.strip_prefix(prefix).and_then(|v| v.parse().ok());
            if let Some(s) = value("s") {
                stride = s;
            }
            if let Some(p) = value("p") {
                padding = p;
            }
        }
    }
    (stride, padding)
}

fn conv_from_params(case: &Value, name: &str, dev: &Device) -> Conv2d {
    let params = &case["params"];
    let weight = float_tensor::<4>(&params[format!("{name}_weight")], dev);
    let bias = float_tensor::<1>(&params[format!("{name}_bias")], dev);
    let [out_c, in_c, kh, kw] = weight.dims();
    let architecture = case["architecture"].as_str().unwrap_or("");
    let (stride, pad) = conv_geometry(architecture, name, kh);
    let mut conv = Conv2dConfig::new([in_c, out_c], [kh, kw])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
        .init(dev);
    conv.weight = Param::from_tensor(weight);
    conv.bias = Some(Param::from_tensor(bias));
    conv
}

fn linear_from_params(case: &Value, dev: &Device) -> Linear {
    // PyTorch stores [out, in]; Burn's row layout is [in, out].
    let weight = float_tensor::<2>(&case["params"]["fc_weight"], dev);
    let bias = float_tensor::<1>(&case["params"]["fc_bias"], dev);
    let [out_f, in_f] = weight.dims();
    let mut fc = LinearConfig::new(in_f, out_f).init(dev);
    fc.weight = Param::from_tensor(weight.transpose());
    fc.bias = Some(Param::from_tensor(bias));
    fc
}

fn global_avg_pool(x: Tensor<4>) -> Tensor<2> {
    x.mean_dims(&[2, 3]).flatten::<2>(1, 3)
}

/// Every saliency case: rebuild the tiny net, compare logits, score_max, argmax, input_grad and
/// saliency.
pub fn saliency(dev: &Device, tolerance: Tolerance) {
    let cases = oracle_cases("saliency");
    let mut check = Checker::new("saliency", tolerance);
    for case in &cases {
        let id = id(case);
        let architecture = case["architecture"].as_str().expect("architecture string");
        let conv1 = conv_from_params(case, "conv1", dev);
        let fc = linear_from_params(case, dev);
        let has_conv2 = case["params"].get("conv2_weight").is_some();
        let conv2 = has_conv2.then(|| conv_from_params(case, "conv2", dev));
        assert_eq!(
            architecture.starts_with('B'),
            has_conv2,
            "{id}: architecture {architecture:?} and params disagree"
        );
        let pool = MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init();
        let forward = |x: Tensor<4>| -> Tensor<2> {
            let mut h = relu(conv1.forward(x));
            if let Some(conv2) = &conv2 {
                h = relu(conv2.forward(pool.forward(h)));
            }
            fc.forward(global_avg_pool(h))
        };

        let input = float_tensor::<4>(&case["input"], dev);
        let out = vanilla_saliency(input, forward);
        check.tensor(&id, "logits", out.logits.clone(), &case["logits"]);
        check.tensor(
            &id,
            "score_max",
            out.logits.clone().max_dim(1),
            &case["score_max"],
        );
        let (want_argmax, _) = flatten(&case["argmax_class"]);
        let got_argmax: Vec<f64> = int_tensor_to_vec(out.logits.argmax(1))
            .into_iter()
            .map(|x| x as f64)
            .collect();
        check.values(&id, "argmax_class", &got_argmax, &want_argmax);
        check.tensor(&id, "input_grad", out.input_grad, &case["input_grad"]);
        check.tensor(&id, "saliency", out.map, &case["saliency"]);
    }
    check.finish(cases.len());
}
