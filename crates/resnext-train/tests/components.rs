//! Components own their configs: `[optim]` and `[schedule]` are chosen by `name`, each with its
//! own keys, defaults and checks; the TOML stays flat as users write it; a key of another
//! component is an error naming it; a run's `config.toml` written before (with every key) still
//! loads. And the optimiser's parameter roles come from the network's structure.

use resnext_model::network::ParamRole;
use resnext_model::{ModelConfig, ResNeXt};
use resnext_train::config::{
    AdamConfig, CosineConfig, ScheduleRule, SgdConfig, StepConfig, TrainConfig, UpdateRule,
};
use std::path::Path;

fn parse(text: &str) -> Result<TrainConfig, String> {
    TrainConfig::from_toml(text, Path::new("<test>")).map_err(|e| e.to_string())
}

#[test]
fn each_rule_takes_its_own_keys_and_round_trips() {
    let c = parse("[optim]\nname = \"sgd\"\nlr = 0.1\nmomentum = 0.5\nnesterov = true\n").unwrap();
    assert_eq!(
        c.optim.rule,
        UpdateRule::Sgd(SgdConfig {
            momentum: 0.5,
            nesterov: true
        })
    );
    assert_eq!(c.optim.lr, 0.1);
    let text = c.to_toml().unwrap();
    assert!(
        text.contains("momentum = 0.5") && !text.contains("betas"),
        "{text}"
    );
    assert_eq!(parse(&text).unwrap(), c);
    let c = parse("[optim]\nname = \"adamw\"\nbetas = [0.8, 0.99]\n").unwrap();
    assert_eq!(
        c.optim.rule,
        UpdateRule::AdamW(AdamConfig {
            betas: [0.8, 0.99],
            eps: 1e-8
        })
    );
    let c = parse("[schedule]\nname = \"step\"\nstep_size = 3\n").unwrap();
    assert_eq!(
        c.schedule.rule,
        ScheduleRule::Step(StepConfig {
            step_size: 3,
            gamma: 0.1
        })
    );
    let c = parse("[schedule]\nname = \"cosine\"\nwarmup_epochs = 1\n").unwrap();
    assert_eq!(
        c.schedule.rule,
        ScheduleRule::Cosine(CosineConfig { min_lr: 0.0 })
    );
    assert_eq!(c.schedule.warmup_epochs, 1.0);
    // the defaults are each component's, and an empty file is the default config
    let d = parse("").unwrap();
    assert_eq!(d, TrainConfig::default());
    assert_eq!(d.optim.rule, UpdateRule::Adam(AdamConfig::default()));
    assert_eq!((d.optim.lr, d.optim.head_lr_mult), (1e-4, 1.0));
    assert_eq!(d.schedule.rule, ScheduleRule::Constant);
    assert_eq!(d.schedule.warmup_start_factor, 0.01);
}

#[test]
fn a_key_of_another_component_is_an_error_naming_it() {
    for (text, needles) in [
        (
            "[optim]\nname = \"adam\"\nmomentum = 0.9\n",
            ["optim.momentum", "\"sgd\""],
        ),
        (
            "[optim]\nname = \"sgd\"\nbetas = [0.9, 0.99]\n",
            ["optim.betas", "\"adam\""],
        ),
        (
            "[optim]\neps = 1e-6\nname = \"sgd\"\n",
            ["optim.eps", "\"adam\""],
        ),
        (
            "[schedule]\nmin_lr = 0.1\n",
            ["schedule.min_lr", "\"cosine\""],
        ),
        (
            "[schedule]\nname = \"cosine\"\ngamma = 0.5\n",
            ["schedule.gamma", "\"step\""],
        ),
        ("[optim]\nname = \"lamb\"\n", ["lamb", "adamw"]),
        ("[optim]\nfoo = 1\n", ["foo", "lr"]),
        (
            "[schedule]\nname = \"step\"\nstep_size = 0\n",
            ["schedule.step_size", "at least 1"],
        ),
        (
            "[optim]\nname = \"sgd\"\nmomentum = 1.0\n",
            ["optim.momentum", "[0, 1)"],
        ),
    ] {
        let e = parse(text).unwrap_err();
        for n in needles {
            assert!(e.contains(n), "{text:?}: `{n}` not in {e}");
        }
        assert!(!e.contains('\n'), "{e}");
    }
}

#[test]
fn a_run_config_written_with_every_key_still_loads() {
    // what config.toml held when [optim] and [schedule] were flat unions
    let old = "[optim]\nname = \"adam\"\nlr = 0.001\nweight_decay = 0.0\ndecay_norm_and_bias = false\n\
               betas = [0.9, 0.999]\neps = 1e-8\nmomentum = 0.9\nnesterov = false\nhead_lr_mult = 1.0\n\
               [schedule]\nname = \"constant\"\nwarmup_epochs = 0.0\nwarmup_start_factor = 0.01\n\
               step_size = 30\ngamma = 0.1\nmin_lr = 0.0\n";
    assert!(
        parse(old).is_err(),
        "a user's config with another rule's keys is refused"
    );
    let c = TrainConfig::from_run_toml(old, Path::new("config.toml")).unwrap();
    assert_eq!(c.optim.rule, UpdateRule::Adam(AdamConfig::default()));
    assert_eq!(c.optim.lr, 0.001);
    assert_eq!(c.schedule.rule, ScheduleRule::Constant);
}

#[test]
fn parameter_roles_come_from_the_structure() {
    let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    let net = ResNeXt::new(&vs.root(), &ModelConfig::custom([1, 1, 1, 1], 2, 4, 3)).unwrap();
    let roles = net.parameter_roles();
    let trainable: Vec<(String, tch::Tensor)> = vs
        .variables()
        .into_iter()
        .filter(|(_, t)| t.requires_grad())
        .collect();
    assert_eq!(
        roles.len(),
        trainable.len(),
        "every trainable tensor has a role"
    );
    for (name, t) in &trainable {
        let role = roles
            .iter()
            .find(|(r, _)| r.data_ptr() == t.data_ptr())
            .map(|(_, role)| *role)
            .unwrap_or_else(|| panic!("{name} has no role"));
        // torchvision's names agree with the structure
        let parent = name.rsplit_once('.').map_or("", |(p, _)| p);
        let is_bn = parent.rsplit('.').next().unwrap_or("").starts_with("bn")
            || parent.ends_with("downsample.1");
        assert_eq!(role.norm, is_bn, "{name}");
        assert_eq!(role.head, name.starts_with("fc."), "{name}");
        assert_eq!(role.bias, name == "fc.bias", "{name}");
        if role == ParamRole::WEIGHT {
            assert!(t.dim() > 1, "{name}");
        }
    }
}
