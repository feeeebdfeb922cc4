//! Parameter paths as burn-store's `PytorchStore` matches them against a PyTorch `state_dict`.

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Tensor;

/// Collects parameter paths the way burn-store's PytorchStore sees them: enum variant names are
/// skipped, and BatchNorm's `gamma`/`beta` are torchvision's `weight`/`bias`.
#[derive(Default)]
pub struct TorchKeys {
    /// (field or index name, type of the module that holds it)
    stack: Vec<(String, String)>,
    keys: Vec<String>,
}

impl TorchKeys {
    /// Every parameter key of `module`, as PyTorch would name it.
    pub fn of<M: Module>(module: &M) -> Vec<String> {
        let mut visitor = Self::default();
        module.visit(&mut visitor);
        visitor.keys
    }
}

impl ModuleVisitor for TorchKeys {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.stack
            .push((name.to_string(), container_type.to_string()));
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.stack.pop();
    }

    fn visit_float<const D: usize>(&mut self, _param: &Param<Tensor<D>>) {
        let mut parts: Vec<String> = self
            .stack
            .iter()
            .filter(|(_, owner)| !owner.starts_with("Enum:"))
            .map(|(name, _)| name.clone())
            .collect();
        let owner = self.stack.last().map(|(_, owner)| owner.as_str());
        if owner == Some("Struct:BatchNorm") {
            let last = parts.last_mut().unwrap();
            if last == "gamma" {
                *last = "weight".into();
            } else if last == "beta" {
                *last = "bias".into();
            }
        }
        self.keys.push(parts.join("."));
    }
}
