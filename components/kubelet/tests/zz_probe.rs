use kadm_e2e::containerd::TestContainerd;
use kadm_kubelet::cri::remote::RemoteRuntime;
use kadm_kubelet::cri::{Runtime, api};

#[tokio::test]
async fn probe() -> anyhow::Result<()> {
    let ctd = TestContainerd::start()?;
    let rt = RemoteRuntime::new(&format!("unix://{}", ctd.socket().display()))?;
    let variants: Vec<(&str, bool, String)> = vec![
        ("hostnet-nocg", true, String::new()),
        ("hostnet-cg", true, "/kadm-probe/kubepods/besteffort/podx".into()),
        ("podnet-nocg", false, String::new()),
        ("podnet-cg", false, "/kadm-probe/kubepods/besteffort/pody".into()),
    ];
    kadm_kubelet::cni::write(&kadm_kubelet::cni::CniSettings { conf_dir: ctd.cni_conf_dir().to_path_buf(), bridge: ctd.bridge_name().into(), ipam_data_dir: Some(ctd.cni_data_dir().to_path_buf()) }, &["10.245.250.0/24".into()])?;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    for (name, hostnet, cg) in variants {
        let cfg = api::PodSandboxConfig {
            metadata: Some(api::PodSandboxMetadata { name: name.into(), uid: format!("uid-{name}"), namespace: "default".into(), attempt: 0 }),
            hostname: if hostnet { String::new() } else { "h".into() },
            log_directory: ctd.dir().join(name).display().to_string(),
            linux: Some(api::LinuxPodSandboxConfig {
                cgroup_parent: cg,
                security_context: Some(api::LinuxSandboxSecurityContext {
                    namespace_options: Some(api::NamespaceOption {
                        network: if hostnet { api::NamespaceMode::Node as i32 } else { api::NamespaceMode::Pod as i32 },
                        pid: api::NamespaceMode::Container as i32,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let t = std::time::Instant::now();
        let r = rt.run_pod_sandbox(cfg, String::new()).await;
        eprintln!("PROBE {name}: {:?} in {:?}", r.as_ref().map(|_| "ok").map_err(|e| e.to_string()), t.elapsed());
        if let Ok(id) = r {
            rt.stop_pod_sandbox(&id).await?;
            rt.remove_pod_sandbox(&id).await?;
        }
    }
    eprintln!("{}", std::fs::read_to_string(ctd.log_path())?.lines().filter(|l| l.contains("error") || l.contains("warn")).take(20).collect::<Vec<_>>().join("\n"));
    Ok(())
}
