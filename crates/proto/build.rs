//! Compiles `proto/` with protox (pure Rust), so building needs no system `protoc`.

use std::env;
use std::error::Error;
use std::fs;
use std::path::PathBuf;

use prost::Message;

const PROTOS: &[&str] = &[
    "switchboard/common/v1/common.proto",
    "switchboard/sms/v1/sms.proto",
    "switchboard/chat/v1/chat.proto",
    "switchboard/voice/v1/voice.proto",
    "switchboard/interact/v1/interact.proto",
    "switchboard/contacts/v1/contacts.proto",
];

fn main() -> Result<(), Box<dyn Error>> {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let proto_root = manifest_dir.join("../../proto");
    println!("cargo:rerun-if-changed={}", proto_root.display());

    let descriptors = protox::compile(PROTOS, [&proto_root])?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    // The encoded descriptors serve gRPC reflection.
    fs::write(out_dir.join("switchboard_descriptor.bin"), descriptors.encode_to_vec())?;
    tonic_prost_build::configure().build_client(true).build_server(true).compile_fds(descriptors)?;
    Ok(())
}
