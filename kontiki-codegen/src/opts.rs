//! [`Opts`]: one set of options for the `Builder`, the CLI and tests.

use std::path::PathBuf;

/// What to generate and where. The field docs are the CLI's `--help` text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
#[non_exhaustive]
pub struct Opts {
    /// Directory to write to (`OUT_DIR` in a build script).
    #[cfg_attr(feature = "cli", arg(long, value_name = "DIR"))]
    pub out: Option<PathBuf>,
    /// Generate only these services (identifier or wire name; repeat the flag); all by default.
    #[cfg_attr(feature = "cli", arg(long = "service", value_name = "NAME"))]
    pub services: Vec<String>,
    /// Generate the calling side only: types, clients, session handles, constants.
    #[cfg_attr(feature = "cli", arg(long, conflicts_with = "server_only"))]
    pub client_only: bool,
    /// Generate the serving side only: types, traits, server adapters, publishers, constants.
    #[cfg_attr(feature = "cli", arg(long))]
    pub server_only: bool,
    /// Also write `lib.rs` declaring one module per package (for a crate of generated code).
    #[cfg_attr(feature = "cli", arg(long))]
    pub lib: bool,
    /// Directories searched, in order, for an import not found next to the importing file
    /// (the CLI's global `-I DIR`).
    #[cfg_attr(feature = "cli", arg(skip))]
    pub include_dirs: Vec<PathBuf>,
}

impl Opts {
    /// Whether the serving side is generated.
    pub fn server(&self) -> bool {
        !self.client_only
    }

    /// Whether the calling side is generated.
    pub fn client(&self) -> bool {
        !self.server_only
    }

    /// Whether `service` is selected.
    pub fn wants_service(&self, service: &kontiki_idl::model::Service) -> bool {
        self.services.is_empty()
            || self
                .services
                .iter()
                .any(|n| *n == service.name || *n == service.wire_name)
    }
}
