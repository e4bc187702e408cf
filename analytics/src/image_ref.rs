//! Container image references, written out in full for comparing them.
//!
//! A pod spec may name one image many ways: `calico/node:v3.27`, `docker.io/calico/node`,
//! `index.docker.io/calico/node@sha256:…`. [`repository`] gives the one full form, the registry
//! host lowercased and Docker Hub's defaults written out, without tag or digest, so that one
//! list entry matches every spelling.

/// The full repository of an image reference: `registry/path`, without tag or digest; Docker
/// Hub's images get `docker.io/` (and `library/` for the official ones).
pub fn repository(image: &str) -> String {
    let image = image.trim();
    let no_digest = image.split_once('@').map_or(image, |(name, _)| name);
    // A tag follows the last `:` after the last `/` (a registry may have a port).
    let last_slash = no_digest.rfind('/').map_or(0, |i| i + 1);
    let name = match no_digest[last_slash..].find(':') {
        Some(colon) => &no_digest[..last_slash + colon],
        None => no_digest,
    };
    match name.split_once('/') {
        Some((host, path)) if host.contains('.') || host.contains(':') || host == "localhost" => {
            let host = host.to_ascii_lowercase();
            let host = match host.as_str() {
                "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
                    "docker.io"
                }
                h => h,
            };
            if host == "docker.io" && !path.contains('/') {
                format!("docker.io/library/{path}")
            } else {
                format!("{host}/{path}")
            }
        }
        Some(_) => format!("docker.io/{name}"),
        None => format!("docker.io/library/{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_of_an_image_has_one_repository() {
        for image in [
            "calico/node",
            "calico/node:v3.27.0",
            "docker.io/calico/node:v3.27.0",
            "index.docker.io/calico/node@sha256:0123abcd",
            "Docker.IO/calico/node:v3.27.0@sha256:0123abcd",
        ] {
            assert_eq!(repository(image), "docker.io/calico/node", "{image}");
        }
        assert_eq!(repository("nginx"), "docker.io/library/nginx");
        assert_eq!(repository("nginx:1.25"), "docker.io/library/nginx");
        assert_eq!(repository("docker.io/nginx"), "docker.io/library/nginx");
        assert_eq!(
            repository("registry.k8s.io/kube-proxy:v1.29.2"),
            "registry.k8s.io/kube-proxy"
        );
        assert_eq!(
            repository("localhost:5000/tools/app:1"),
            "localhost:5000/tools/app"
        );
        assert_eq!(
            repository(
                "602401143452.dkr.ecr.us-west-2.amazonaws.com/eks/kube-proxy:v1.29.0-eksbuild.1"
            ),
            "602401143452.dkr.ecr.us-west-2.amazonaws.com/eks/kube-proxy"
        );
    }
}
