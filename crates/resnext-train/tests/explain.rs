//! Grad-CAM is what it claims: with global average pooling and a linear head, the gradient of a
//! class score is the head's weight row spread evenly over the map, so Grad-CAM must equal
//! ReLU(Σ_k w[c, k] · A_k) / (H·W), the class-activation map of Zhou et al. (2016).

use resnext_model::{ModelConfig, ResNeXt};
use resnext_train::explain::grad_cam;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

#[test]
fn grad_cam_equals_the_class_activation_map() {
    tch::manual_seed(5);
    let vs = VarStore::new(Device::Cpu);
    let net = ResNeXt::new(&vs.root(), &ModelConfig::custom([1, 1, 1, 1], 2, 4, 3)).unwrap();
    let x = Tensor::randn([1, 3, 128, 96], (Kind::Float, Device::Cpu));
    let features = tch::no_grad(|| net.features(&x, false)).unwrap(); // [1, 2048, 4, 3]
    let (h, w) = (features.size()[2], features.size()[3]);
    let fc = vs.variables()["fc.weight"].detach();
    for class in 0..3 {
        let cam = grad_cam(&net, &x, class).unwrap();
        assert_eq!((cam.height as i64, cam.width as i64), (h, w));
        let row = fc.get(class).view([1, -1, 1, 1]);
        let want = (features.shallow_clone() * row)
            .sum_dim_intlist(1, false, Kind::Float)
            .relu()
            .squeeze_dim(0)
            / (h * w) as f64;
        let want: Vec<f32> = Vec::try_from(want.contiguous().view([-1])).unwrap();
        for (a, b) in cam.values.iter().zip(&want) {
            assert!(
                (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                "class {class}: {:?} vs {want:?}",
                cam.values
            );
        }
        assert!(
            cam.values.iter().any(|&v| v > 0.0),
            "class {class}: all zero"
        );
    }
}
