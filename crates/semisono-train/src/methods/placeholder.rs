//! Registered methods whose implementation has not landed yet: building one is a clear error.
//! Removed once every method of the registry is implemented.

macro_rules! not_yet {
    ($ty:ident, $name:literal) => {
        pub struct $ty(std::convert::Infallible);

        impl $ty {
            pub fn new(
                _cfg: &crate::config::TrainConfig,
                _device: &burn::tensor::Device,
            ) -> crate::error::Result<Self> {
                Err(crate::error::TrainError::config(
                    "method",
                    format!("{:?} is not implemented yet", $name),
                ))
            }
        }

        impl super::SslMethod for $ty {
            fn name(&self) -> &'static str {
                $name
            }
            fn step(
                &mut self,
                _: &crate::loader::TrainBatch,
                _: &super::StepContext,
            ) -> crate::error::Result<super::StepLosses> {
                match self.0 {}
            }
            fn eval_forward(&self, _: &crate::loader::ImageBatch) -> super::Predictions {
                match self.0 {}
            }
            fn saliency(&self, _: &crate::loader::ImageBatch) -> Option<burn::tensor::Tensor<3>> {
                match self.0 {}
            }
            fn save(&self, _: &std::path::Path) -> crate::error::Result<()> {
                match self.0 {}
            }
            fn load(&mut self, _: &std::path::Path) -> crate::error::Result<()> {
                match self.0 {}
            }
        }
    };
}
pub(crate) use not_yet;
