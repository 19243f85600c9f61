//! `renda`: one binary that runs a Renda node and its command line.
//!
//! Layout: [`cli`] declares the commands (clap), [`commands`] runs them against the node's store,
//! [`render`] prints tables in Chinese or JSON, and [`demo`] walks a node through a suggestion's
//! whole life. The domain lives in the `renda-node` crate; this binary is glue.

mod bench;
mod bench_load;
mod bench_query;
mod cli;
mod commands;
mod config;
mod demo;
mod render;

use std::process::ExitCode;

use clap::Parser;
use renda_node::store::{Store, StoreError};
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command};
use crate::commands::Session;

/// Exit status for input the user can fix (bad value, illegal step, unknown record): the same
/// code clap uses for usage errors. Anything else (a damaged file, a failed disk) exits 1.
const EXIT_INPUT: u8 = 2;

/// Most lines of an error message the command line prints.
const MESSAGE_LINES: usize = 40;

/// An error message as printed: each line clipped, and at most [`MESSAGE_LINES`] of them, so a
/// pasted file is never echoed whole, one line at a time either.
fn clip_message(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out: Vec<String> = lines
        .iter()
        .take(MESSAGE_LINES)
        .map(|line| renda_node::validate::clip(line, MESSAGE_LINE_CHARS))
        .collect();
    if lines.len() > MESSAGE_LINES {
        out.push(format!(
            "…（另有 {} 行未显示）",
            lines.len() - MESSAGE_LINES
        ));
    }
    out
}

/// Longest line of an error message the command line prints. Help texts are longer but are
/// ours; an error line longer than this quotes an input.
const MESSAGE_LINE_CHARS: usize = 400;

fn exit_code(err: &anyhow::Error) -> u8 {
    if let Some(renda_node::sync::SyncError::Connect { .. }) =
        err.downcast_ref::<renda_node::sync::SyncError>()
    {
        // The parent could not be reached: a scheduled sync should retry later.
        return 3;
    }
    if let Some(e) = err.downcast_ref::<renda_node::pki::PkiError>() {
        use renda_node::pki::PkiError;
        return match e {
            PkiError::Generate(_) => 1,
            PkiError::Io { source, .. } if source.kind() != std::io::ErrorKind::NotFound => 1,
            _ => EXIT_INPUT,
        };
    }
    if err.downcast_ref::<renda_hub::https::HttpsError>().is_some() {
        // A certificate file or a listening address the operator can fix.
        return EXIT_INPUT;
    }
    match err.downcast_ref::<StoreError>() {
        Some(
            StoreError::Invalid(_)
            | StoreError::Rejected { .. }
            | StoreError::NotFound { .. }
            | StoreError::Ambiguous { .. }
            | StoreError::NotInitialised(_)
            | StoreError::AlreadyInitialised(_),
        ) => EXIT_INPUT,
        _ => 1,
    }
}

/// Runs a parsed command: the one place commands are dispatched.
async fn run(cli: Cli) -> anyhow::Result<()> {
    let (data_dir, user, json) = (cli.data_dir, cli.user, cli.json);
    let session = || Session::open(&data_dir, user.clone(), json);
    match cli.command {
        Command::Init(a) => {
            let store = Store::init(&data_dir, a.region, &a.name, a.parent)?;
            let id = store.identity();
            println!(
                "已初始化节点 {}（{}，{}）于 {}",
                id.name,
                id.region,
                id.region.level().map(|l| l.label()).unwrap_or(""),
                data_dir.display()
            );
            Ok(())
        }
        Command::Demo(a) => demo::run(a).await,
        Command::Run(cli::RunArgs {
            config: Some(path), ..
        }) => commands::run_node(config::load(&path)?).await,
        Command::Run(cli::RunArgs {
            config: None,
            settings,
        }) => {
            let here = std::path::Path::new(".");
            commands::run_node(settings.node_config(config::Source::Flags, &data_dir, here)?).await
        }
        Command::Status => session()?.status().await,
        Command::Delegate(c) => session()?.delegate(c).await,
        Command::Group(c) => session()?.group(c).await,
        Command::Venue(c) => session()?.venue(c).await,
        Command::Activity(c) => session()?.activity(c).await,
        Command::Opinion(c) => session()?.opinion(c).await,
        Command::Suggestion(c) => session()?.suggestion(c).await,
        Command::Notice(c) => session()?.notice(c).await,
        Command::Quota(c) => session()?.quota(c).await,
        Command::Motion(c) => session()?.motion(c).await,
        Command::Debug(cli::DebugCmd::WriteLoop { count }) => session()?.write_loop(count).await,
        Command::Sync(a) => session()?.sync_once(a).await,
        Command::Rollup(a) => session()?.rollup(a).await,
        Command::Credential(c) => session()?.credential(c).await,
        Command::Audit { limit } => session()?.audit(limit).await,
        Command::Backup { to } => session()?.backup(to).await,
        Command::Revoke {
            cert,
            region,
            serial,
            reason,
            note,
        } => session()?.revoke(cert, region, serial, reason, note).await,
        Command::Attach { parent } => session()?.attach(parent).await,
        Command::Ca(cli::CaCmd::Init { dir, name, days }) => {
            let ca = renda_node::pki::CertificateAuthority::create(&name, days)?;
            ca.save(&dir)?;
            println!(
                "已创建证书颁发机构“{name}”（有效期 {days} 天）于 {}；请离线妥善保管 {}",
                dir.display(),
                dir.join(renda_node::pki::CA_KEY).display()
            );
            Ok(())
        }
        Command::Ca(cli::CaCmd::Intermediate {
            ca,
            region,
            name,
            days,
            dir,
        }) => {
            let authority = renda_node::pki::CertificateAuthority::load(&ca)?;
            let intermediate = authority.create_intermediate(&region, &name, days)?;
            intermediate.save(&dir)?;
            println!(
                "已为 {region} 的辖区创建中间证书颁发机构“{name}”（有效期 {days} 天）于 {}；它只能为该辖区内的节点签发证书。请离线妥善保管 {}",
                dir.display(),
                dir.join(renda_node::pki::CA_KEY).display()
            );
            Ok(())
        }
        Command::Ca(cli::CaCmd::Rotate { ca, dir, days }) => {
            let authority = renda_node::pki::CertificateAuthority::load(&ca)?;
            let retired = renda_node::pki::rotate_intermediate(&authority, &dir, days)?;
            println!(
                "已为 {} 的中间证书颁发机构换用新密钥；旧文件移至 {}，旧密钥签发的证书在到期前仍然有效",
                dir.display(),
                retired.display()
            );
            Ok(())
        }
        Command::Ca(cli::CaCmd::Issue {
            ca,
            server: true,
            dns,
            ip,
            name,
            days,
            out,
            ..
        }) => {
            let authority = renda_node::pki::CertificateAuthority::load(&ca)?;
            let name = if name.is_empty() {
                "Renda HTTPS".to_string()
            } else {
                name
            };
            let cert = authority.issue_server(&name, &dns, &ip, days)?;
            cert.save_server(&out, authority.root_pem())?;
            let names: Vec<String> = dns
                .iter()
                .cloned()
                .chain(ip.iter().map(ToString::to_string))
                .collect();
            println!(
                "已签发 HTTPS 服务器证书（{}，有效期 {days} 天）于 {}；浏览器需信任联邦 CA（ca.pem），否则会提示证书不受信任",
                names.join("、"),
                out.display()
            );
            Ok(())
        }
        Command::Ca(cli::CaCmd::Issue {
            ca,
            region: Some(region),
            name,
            days,
            out,
            ..
        }) => {
            let authority = renda_node::pki::CertificateAuthority::load(&ca)?;
            let name = if name.is_empty() {
                region.to_string()
            } else {
                name
            };
            let cert = authority.issue(&region, &name, days)?;
            cert.save(&out, authority.root_pem())?;
            let serial = renda_node::pki::certificate_facts(&cert.der()?)
                .map(|f| f.serial)
                .unwrap_or_default();
            println!(
                "已为 {region}（{name}）签发节点证书（序列号 {serial}，有效期 {days} 天）于 {}",
                out.display()
            );
            Ok(())
        }
        Command::Check => {
            let dir = data_dir.clone();
            tokio::task::spawn_blocking(move || renda_node::store::check::full_check(&dir))
                .await??;
            // The file is sound: note the check where `renda status` and the fleet view read it.
            let mut store = Store::open(&data_dir)?;
            store.record_check(chrono::Utc::now(), "ok")?;
            drop(store);
            println!(
                "数据库 {} 完好（SQLite 完整性检查通过）",
                data_dir.join(renda_node::store::DB_FILE).display()
            );
            Ok(())
        }
        Command::Rebuild {
            parent,
            region,
            name,
        } => {
            let (aside, id) =
                Store::rebuild(&data_dir, region, name.as_deref(), parent.as_deref())?;
            println!(
                "已为 {}（{}）新建数据库，原文件保留在 {}；请运行 renda sync --once 或 renda run，从上级和下级取回全部记录。凭据须重新创建（renda credential add）。",
                id.name,
                id.region,
                aside.display()
            );
            Ok(())
        }
        Command::Ca(cli::CaCmd::Issue { region: None, .. }) => Err(StoreError::Invalid(
            renda_node::validate::ValidationError::new(
                "region",
                "节点证书须用 --region 指定区划；HTTPS 服务器证书用 --server",
            ),
        )
        .into()),
        Command::Restore { from } => {
            Store::restore(&data_dir, &from)?;
            println!(
                "已从 {} 恢复节点数据；下次同步时会从上级和下级节点取回备份之后的数据",
                from.display()
            );
            Ok(())
        }
        Command::Bench(cli::BenchCmd::Sync(a)) => bench::run(a).await,
        Command::Bench(cli::BenchCmd::Query(a)) => bench_query::run(a).await,
        Command::Bench(cli::BenchCmd::Load(a)) => bench_load::run(a).await,
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("RENDA_LOG").unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal: a service manager's journal or
        // `docker logs` would show them as escape sequences.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap quotes a refused value whole; a pasted file must not come back whole.
            let text = e.render().to_string();
            let clipped: Vec<String> = if e.use_stderr() {
                clip_message(&text)
            } else {
                text.lines().map(String::from).collect()
            };
            if e.use_stderr() {
                eprintln!("{}", clipped.join("\n"));
            } else {
                println!("{}", clipped.join("\n"));
            }
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(EXIT_INPUT));
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("错误: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // Messages quote inputs clipped where they are made; this is the last guard.
            let clip = |text: String| clip_message(&text).join("\n");
            eprintln!("错误: {}", clip(err.to_string()));
            for cause in err.chain().skip(1) {
                eprintln!("  原因: {}", clip(cause.to_string()));
            }
            ExitCode::from(exit_code(&err))
        }
    }
}
