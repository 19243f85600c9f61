//! Compiles the .proto files with protox (pure Rust), so no protoc is needed on the machine, and
//! keeps their descriptors for gRPC server reflection.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let descriptors = protox::compile(
        [
            "renda/v1/sync.proto",
            "renda/v1/query.proto",
            "renda/query/v1/query.proto",
            "renda/query/v1/records.proto",
            "renda/query/v1/figures.proto",
            "renda/query/v1/enums.proto",
        ],
        ["proto"],
    )?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("renda.fds"),
        prost::Message::encode_to_vec(&descriptors),
    )?;
    // The Query API sits at `renda_proto::query::v1`, not under `renda::`, so it names the
    // Google types by their path in this crate, and they are generated on their own.
    let google = prost_types::FileDescriptorSet {
        file: descriptors
            .file
            .iter()
            .filter(|f| f.package() == "google.type")
            .cloned()
            .collect(),
    };
    tonic_prost_build::configure()
        .extern_path(".google.type", "crate::google::types")
        .compile_fds(descriptors)?;
    tonic_prost_build::configure().compile_fds(google)?;
    Ok(())
}
