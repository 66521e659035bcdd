//! A three-node NATS cluster with JetStream on loopback, of the test's own (free ports, its own
//! store directories), laid out as `infra/nats-cluster.sh` lays it out for people: nats-server
//! 2.9, one client port, one route port and one store per node, explicit routes, `server_name`
//! `n1`..`n3`. A test stops and starts nodes ([`NatsCluster::stop_node`]) and finds the node that
//! leads a stream ([`NatsCluster::stream_leader`]). Every node is killed and its store deleted on
//! drop.

use rp_platform::testing::{eventually, free_port};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How long a node may take to listen, or the cluster to elect a leader.
const UP: Duration = Duration::from_secs(30);

pub struct NatsCluster {
    dir: PathBuf,
    nodes: Vec<Node>,
}

struct Node {
    name: String,
    port: u16,
    config: PathBuf,
    child: Option<Child>,
}

impl NatsCluster {
    /// Writes the three nodes' configurations, starts them, and returns once JetStream answers
    /// through the cluster (a meta leader is elected: a stream can be created).
    pub async fn start() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "rp-nats-cluster-{}-{}",
            std::process::id(),
            free_port()
        ));
        let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
        let mut nodes = Vec::new();
        for (i, (port, route)) in ports.iter().enumerate() {
            let name = format!("n{}", i + 1);
            let store = dir.join(&name).join("store");
            std::fs::create_dir_all(&store)
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", store.display()));
            let routes: Vec<String> = ports
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, (_, r))| format!("\"nats-route://127.0.0.1:{r}\""))
                .collect();
            let config = dir.join(&name).join("nats.conf");
            std::fs::write(
                &config,
                format!(
                    "server_name: {name}\nlisten: 127.0.0.1:{port}\n\
                     jetstream {{\n  store_dir: \"{}\"\n}}\n\
                     cluster {{\n  name: rp\n  listen: 127.0.0.1:{route}\n  routes: [ {} ]\n}}\n",
                    store.display(),
                    routes.join(", ")
                ),
            )
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", config.display()));
            nodes.push(Node {
                name,
                port: *port,
                config,
                child: None,
            });
        }
        let mut cluster = Self { dir, nodes };
        for i in 0..3 {
            cluster.spawn(i);
        }
        for i in 0..3 {
            cluster.wait_listening(i).await;
        }
        let url = cluster.url();
        eventually(UP, "the NATS cluster's JetStream (a meta leader)", || {
            let url = url.clone();
            async move {
                let client = rp_platform::bus::connect(&url, "cluster-probe")
                    .await
                    .ok()?;
                let js = async_nats::jetstream::new(client);
                // A stream of three replicas can be created: a meta leader is elected and every
                // node has joined. (async-nats 0.51 cannot parse 2.9's account info.)
                js.create_stream(async_nats::jetstream::stream::Config {
                    name: "CLUSTER_PROBE".into(),
                    subjects: vec!["cluster-probe".into()],
                    num_replicas: 3,
                    storage: async_nats::jetstream::stream::StorageType::Memory,
                    ..Default::default()
                })
                .await
                .ok()?;
                js.delete_stream("CLUSTER_PROBE").await.ok().map(|_| ())
            }
        })
        .await;
        cluster
    }

    /// Every node's client URL, comma-separated: a `NATS_URL`.
    pub fn url(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("nats://127.0.0.1:{}", n.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The nodes' server names (`n1`..`n3`), in order.
    pub fn names(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.name.clone()).collect()
    }

    /// The index of the node that leads the stream `stream` (from the stream's cluster info),
    /// once there is one.
    pub async fn stream_leader(&self, js: &async_nats::jetstream::Context, stream: &str) -> usize {
        eventually(UP, &format!("a leader of the stream {stream}"), || async {
            let mut s = js.get_stream(stream).await.ok()?;
            let leader = s.info().await.ok()?.cluster.as_ref()?.leader.clone()?;
            self.nodes.iter().position(|n| n.name == leader)
        })
        .await
    }

    /// Stops node `i` as an operator does (SIGTERM: it hands its leaderships over and flushes
    /// its store) and waits for it to exit.
    pub async fn stop_node(&mut self, i: usize) {
        let Some(mut child) = self.nodes[i].child.take() else {
            panic!("node {} is not running", self.nodes[i].name);
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        eventually(UP, "a stopped nats-server to exit", || {
            let done = child.try_wait().map(|s| s.is_some()).unwrap_or(true);
            async move { done.then_some(()) }
        })
        .await;
    }

    /// Starts node `i` again on its store; returns once it listens.
    pub async fn start_node(&mut self, i: usize) {
        assert!(self.nodes[i].child.is_none(), "node {i} is running");
        self.spawn(i);
        self.wait_listening(i).await;
    }

    /// Whether node `i` is running.
    pub fn is_running(&self, i: usize) -> bool {
        self.nodes[i].child.is_some()
    }

    fn spawn(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let log = std::fs::File::create(node.config.with_file_name("log"))
            .unwrap_or_else(|e| panic!("a log for {}: {e}", node.name));
        let child = Command::new("nats-server")
            .arg("-c")
            .arg(&node.config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("nats-server: {e} (is it installed? infra/dev-up.sh)"));
        node.child = Some(child);
    }

    async fn wait_listening(&self, i: usize) {
        let addr = format!("127.0.0.1:{}", self.nodes[i].port);
        eventually(
            UP,
            &format!("nats-server {} to listen", self.nodes[i].name),
            || {
                let addr = addr.clone();
                async move { tokio::net::TcpStream::connect(addr).await.ok().map(|_| ()) }
            },
        )
        .await;
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut c) = node.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        if std::thread::panicking() {
            eprintln!("the NATS cluster's logs are kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
