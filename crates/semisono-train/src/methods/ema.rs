//! Exponential moving average of one module into a copy of the same architecture: the teacher of
//! Mean Teacher and PatchCL. `teacher ← α·teacher + (1 − α)·student` for every float tensor the
//! module holds, BatchNorm running statistics included (they are visited like parameters).

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::Tensor;

/// The EMA decay of step `step` (1-based): `min(1 − 1/step, alpha)`, the Mean Teacher ramp that
/// lets the teacher follow the student closely at the start.
pub fn ema_decay(alpha: f64, step: u64) -> f64 {
    (1.0 - 1.0 / step.max(1) as f64).min(alpha)
}

/// `teacher ← alpha·teacher + (1 − alpha)·student`, detached; the two modules must have the same
/// architecture (the visiting order pairs their tensors).
pub fn ema_update<M: Module>(teacher: M, student: &M, alpha: f64) -> M {
    let mut collect = Collect(Vec::new());
    student.visit(&mut collect);
    let mut mix = Mix {
        student: collect.0.into_iter(),
        alpha,
    };
    let out = teacher.map(&mut mix);
    assert!(
        mix.student.next().is_none(),
        "EMA teacher and student differ in architecture"
    );
    out
}

/// The student's tensors, flattened, in visiting order.
struct Collect(Vec<Tensor<1>>);

impl ModuleVisitor for Collect {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let t = param.val().detach();
        let n = t.shape().num_elements();
        self.0.push(t.reshape([n]));
    }
}

struct Mix {
    student: std::vec::IntoIter<Tensor<1>>,
    alpha: f64,
}

impl ModuleMapper for Mix {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let s = self
            .student
            .next()
            .expect("EMA teacher and student differ in architecture");
        let a = self.alpha;
        param.map(|t| {
            let shape = t.shape();
            (t.detach().mul_scalar(a) + s.reshape(shape).mul_scalar(1.0 - a)).detach()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::{Linear, LinearConfig};
    use burn::tensor::Device;

    fn weights(m: &Linear) -> Vec<f32> {
        m.weight
            .val()
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .unwrap()
    }

    #[test]
    fn ema_mixes_every_weight_with_the_decay() {
        let d = Device::flex();
        let teacher = LinearConfig::new(3, 2).init(&d);
        let student = LinearConfig::new(3, 2).init(&d);
        let (t0, s0) = (weights(&teacher), weights(&student));
        let mixed = ema_update(teacher, &student, 0.75);
        for ((m, t), s) in weights(&mixed).iter().zip(&t0).zip(&s0) {
            assert!((m - (0.75 * t + 0.25 * s)).abs() < 1e-6, "{m} vs {t} {s}");
        }
    }

    #[test]
    fn decay_ramps_up_to_alpha() {
        assert_eq!(ema_decay(0.99, 1), 0.0);
        assert_eq!(ema_decay(0.99, 2), 0.5);
        assert_eq!(ema_decay(0.99, 1000), 0.99);
    }
}
