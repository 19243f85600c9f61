//! Runs a parsed command against the node's store. Glue only: the rules live in `renda_node`.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use chrono::NaiveDate;
use renda_node::office::{self, ActivityDraft, Contact, SeatDraft, StationRef, SuggestionDraft};
use renda_node::record::activity::Activity;
use renda_node::record::delegate::Delegate;
use renda_node::record::group::{Group, Venue};
use renda_node::record::notice::Notice;
use renda_node::record::opinion::{OpinionAction, OpinionFields};
use renda_node::record::suggestion::{SuggestionAction, UnitAssignment, UnitRole};
use renda_node::record::{Body, IdSet, Record, RecordId, RecordKind};
use renda_node::region::RegionCode;
use renda_node::store::{ListQuery, Store, StoreHandle};

use crate::cli::*;
use crate::render;

/// Everything a command needs: the store and how to print.
pub struct Session {
    pub store: StoreHandle,
    pub user: String,
    pub json: bool,
}

/// A node certificate this close to its end is warned about in `renda status`.
const CERT_WARN_DAYS: i64 = 30;

/// Today in China, whatever the machine's own time zone.
pub fn today() -> NaiveDate {
    renda_node::calendar::today()
}

fn day(d: DateArg) -> NaiveDate {
    d.date.unwrap_or_else(today)
}

impl Session {
    pub fn open(data_dir: &std::path::Path, user: String, json: bool) -> Result<Session> {
        let store = Store::open(data_dir)?;
        Ok(Session {
            store: StoreHandle::spawn(store)?,
            user,
            json,
        })
    }

    /// Resolves a typed id (or unique prefix) of `kind`.
    async fn id(&self, kind: RecordKind, field: &'static str, text: &str) -> Result<RecordId> {
        let text = text.to_string();
        Ok(self
            .store
            .call(move |s| s.resolve(kind, field, &text))
            .await?)
    }

    async fn ids(
        &self,
        kind: RecordKind,
        field: &'static str,
        texts: &[String],
    ) -> Result<Vec<RecordId>> {
        let mut out = Vec::new();
        for t in texts {
            out.push(self.id(kind, field, t).await?);
        }
        Ok(out)
    }

    async fn opt_id(
        &self,
        kind: RecordKind,
        field: &'static str,
        text: &Option<String>,
    ) -> Result<Option<RecordId>> {
        match text {
            Some(t) => Ok(Some(self.id(kind, field, t).await?)),
            None => Ok(None),
        }
    }

    /// Prints a new record's id on stdout (for scripts) and a confirmation on stderr.
    fn created(&self, kind: RecordKind, id: RecordId) {
        println!("{id}");
        eprintln!("已创建{}记录 {id}", kind.label());
    }

    async fn list(
        &self,
        kind: RecordKind,
        args: &ListArgs,
        overdue_on: Option<NaiveDate>,
    ) -> Result<()> {
        let delegate = self
            .opt_id(RecordKind::Delegate, "delegate", &args.delegate)
            .await?;
        let q = ListQuery {
            kind: Some(kind),
            status: args.status.clone(),
            within: args.within,
            delegate,
            overdue_on,
            period: args.period.clone(),
            limit: args.limit,
            offset: args.offset,
            ..ListQuery::default()
        };
        let rows = self.store.call(move |s| s.list(&q)).await?;
        if self.json {
            println!("{}", serde_json::to_string_pretty(&rows)?);
        } else {
            println!("{}", render::list(kind, &rows));
        }
        Ok(())
    }

    async fn show(&self, kind: RecordKind, id: &str) -> Result<()> {
        let id = self.id(kind, "id", id).await?;
        let (record, personal) = self
            .store
            .call(move |s| Ok((s.get(&id)?, s.personal_for(&id)?)))
            .await?;
        self.print_record(&record, personal.as_ref())
    }

    fn print_record(&self, record: &Record, personal: Option<&Record>) -> Result<()> {
        if self.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&record.to_json(personal))?
            );
        } else {
            println!("{}", render::record_text(record, personal));
        }
        Ok(())
    }

    /// Prints a workflow record's state after a step.
    pub fn print_step(&self, record: &Record) -> Result<()> {
        if self.json {
            return self.print_record(record, None);
        }
        match &record.body {
            Body::Suggestion(s) => {
                let (st, _) = s.fold(&record.header);
                let mut line = format!("建议“{}”：{}", s.fields.title, st.state.label());
                if let Some(due) = st.due {
                    line.push_str(&format!("，答复期限 {due}"));
                }
                println!("{line}");
            }
            Body::Opinion(o) => {
                let (st, _) = o.fold(&record.header);
                println!("民情 {}：{}", record.header.id, st.state.label());
            }
            Body::Motion(m) => {
                let (st, _) = m.fold(&record.header);
                let mut line = format!("议案“{}”：{}", m.fields.title, st.state.label());
                if let Some(suggestion) = st.suggestion {
                    line.push_str(&format!("，转成建议 {suggestion}"));
                }
                println!("{line}");
            }
            _ => println!("已更新 {}", record.header.id),
        }
        Ok(())
    }

    pub async fn revoke(
        &self,
        cert: Option<std::path::PathBuf>,
        region: Option<RegionCode>,
        serial: Option<String>,
        reason: renda_node::record::revocation::RevocationReason,
        note: String,
    ) -> Result<()> {
        let (region, serial) = match (cert, region, serial) {
            (Some(path), _, _) => {
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                let der = renda_node::pki::pem_cert(&text, &path)?;
                let facts = renda_node::pki::certificate_facts(&der).map_err(|e| {
                    renda_node::pki::PkiError::Invalid {
                        path: path.clone(),
                        rule: e.to_string(),
                    }
                })?;
                (facts.region, facts.serial)
            }
            (None, Some(region), Some(serial)) => (region, serial),
            _ => anyhow::bail!("give --cert, or --region with --serial"),
        };
        let user = self.user.clone();
        let header = self
            .store
            .write(move |tx| {
                renda_node::office::revoke_certificate(tx, &user, region, &serial, reason, &note)
            })
            .await?;
        println!(
            "已吊销 {region} 的证书（记录 {}）；它将随同步下发到上级节点 {} 的辖区，届时该证书的连接一律被拒绝。请为该节点签发新证书（renda ca issue）后再接入。",
            header.id,
            region.parent().unwrap_or(region)
        );
        Ok(())
    }

    pub async fn backup(&self, to: std::path::PathBuf) -> Result<()> {
        let shown = to.display().to_string();
        // Written under a temporary name beside it and renamed when whole, as scheduled
        // backups are: a killed command leaves no truncated file with the backup's name.
        let partial = to.with_file_name(format!(
            ".{}.partial",
            to.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        ));
        self.store
            .call(move |s| {
                if to.exists() {
                    return Err(renda_node::validate::ValidationError::new(
                        "to",
                        format!("{} 已经存在，不会覆盖", to.display()),
                    )
                    .into());
                }
                let _ = std::fs::remove_file(&partial);
                s.backup_to(&partial)?;
                std::fs::File::open(&partial)
                    .and_then(|f| f.sync_all())
                    .and_then(|()| std::fs::rename(&partial, &to))
                    .map_err(|e| {
                        renda_node::store::StoreError::Io(format!("{}: {e}", to.display()))
                    })?;
                // The full path, so `renda status` says where the last copy is.
                let at = std::path::absolute(&to).unwrap_or(to);
                s.record_backup(chrono::Utc::now(), &at)
            })
            .await?;
        println!("已备份到 {shown}");
        Ok(())
    }

    pub async fn attach(&self, parent: String) -> Result<()> {
        let shown = parent.clone();
        self.store.call(move |s| s.set_parent_addr(&parent)).await?;
        println!("已设置上级节点地址：{shown}");
        Ok(())
    }

    pub async fn status(&self) -> Result<()> {
        let (identity, stats, peers) = self
            .store
            .call(|s| Ok((s.identity().clone(), s.stats()?, s.peers()?)))
            .await?;
        // The certificate is shown, not required: a broken one is reported here, not fatal.
        let certificate = match self.node_tls().await {
            Ok(Some(tls)) => {
                let left = (tls.not_after() - chrono::Utc::now()).num_days();
                if left < CERT_WARN_DAYS {
                    tracing::warn!(not_after = %tls.not_after(), "the node certificate expires in {left} days");
                }
                serde_json::json!({ "installed": true, "not_after": tls.not_after(), "days_left": left, "serial": tls.serial() })
            }
            Ok(None) => serde_json::json!({ "installed": false }),
            Err(e) => serde_json::json!({ "installed": true, "error": e.to_string() }),
        };
        if self.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({
                    "node": identity, "store": stats, "peers": peers, "certificate": certificate
                }))?
            );
            return Ok(());
        }
        let mut t = render::table(&["项目", "内容"]);
        t.add_row(vec!["节点".to_string(), identity.name.clone()]);
        t.add_row(vec!["区划代码".to_string(), identity.region.to_string()]);
        t.add_row(vec![
            "级别".to_string(),
            identity
                .region
                .level()
                .map(|l| l.label())
                .unwrap_or("")
                .to_string(),
        ]);
        t.add_row(vec![
            "上级节点".to_string(),
            identity
                .parent_addr
                .clone()
                .unwrap_or_else(|| "（未连接）".into()),
        ]);
        t.add_row(vec![
            "节点证书".to_string(),
            match (
                certificate["not_after"].as_str(),
                certificate["days_left"].as_i64(),
                certificate["error"].as_str(),
            ) {
                (_, _, Some(error)) => format!("无法使用：{error}"),
                (Some(until), Some(left), _) if left < CERT_WARN_DAYS => {
                    format!("有效至 {until}，仅剩 {left} 天，请尽快换发")
                }
                (Some(until), Some(left), _) => format!(
                    "有效至 {until}（剩余 {left} 天），序列号 {}",
                    certificate["serial"].as_str().unwrap_or("")
                ),
                _ => "未安装：同步链路为明文".to_string(),
            },
        ]);
        t.add_row(vec![
            "初始化时间".to_string(),
            identity.created_at.format("%Y-%m-%d %H:%M").to_string(),
        ]);
        for (kind, n) in &stats.records_by_kind {
            t.add_row(vec![format!("{}记录", kind.label()), n.to_string()]);
        }
        if stats.unknown_state > 0 {
            t.add_row(vec![
                renda_node::record::event::UNKNOWN_STATE_LABEL.to_string(),
                format!(
                    "{} 条记录含有更新版本写入的办理步骤，请升级本节点后再办理",
                    stats.unknown_state
                ),
            ]);
        }
        if !stats.newer_kinds.is_empty() {
            let kinds: Vec<String> = stats
                .newer_kinds
                .iter()
                .map(|(kind, n)| format!("{kind} {n} 条"))
                .collect();
            t.add_row(vec![
                "未知类型记录（需升级）".to_string(),
                format!(
                    "{}：由更新版本写入，本节点原样保存并按路由转发，升级后可查看",
                    kinds.join("、")
                ),
            ]);
        }
        t.add_row(vec![
            "本地变更序列".to_string(),
            format!("{} 条（至 {}）", stats.changes, stats.last_seq),
        ]);
        t.add_row(vec![
            "数据库大小".to_string(),
            format!("{:.1} KiB", stats.file_bytes as f64 / 1024.0),
        ]);
        let local = |at: chrono::DateTime<chrono::Utc>| {
            at.with_timezone(&renda_node::calendar::china())
                .format("%Y-%m-%d %H:%M")
                .to_string()
        };
        t.add_row(vec![
            "最近备份".to_string(),
            match &stats.last_backup {
                Some(b) => format!("{}，{}", local(b.at), b.detail),
                None => {
                    "从未备份：请在配置中设置 [backup] dir，或运行 renda backup --to 文件".into()
                }
            },
        ]);
        t.add_row(vec![
            "最近检查".to_string(),
            match &stats.last_check {
                Some(c) if c.detail == "ok" => format!("{}，数据库完好", local(c.at)),
                Some(c) => format!("{}，{}", local(c.at), c.detail),
                None => "尚未检查：renda run 启动时检查，或运行 renda check".into(),
            },
        ]);
        println!("{t}");
        if !peers.is_empty() {
            let mut p = render::table(&[
                "同步对象",
                "关系",
                "最近成功",
                "发出记录",
                "收到记录",
                "发出变更",
                "收到变更",
                "发出字节",
                "收到字节",
                "滞后",
                "状态",
                "拒收",
                "最近错误",
            ]);
            for peer in &peers {
                let relation = if identity.region.parent() == Some(peer.peer) {
                    "上级"
                } else {
                    "下级"
                };
                p.add_row(vec![
                    peer.peer.to_string(),
                    relation.to_string(),
                    peer.last_success
                        .map(|t| {
                            t.with_timezone(&renda_node::calendar::china())
                                .format("%Y-%m-%d %H:%M:%S")
                                .to_string()
                        })
                        .unwrap_or_else(|| "从未".into()),
                    peer.records_out.to_string(),
                    peer.records_in.to_string(),
                    peer.changes_out.to_string(),
                    peer.changes_in.to_string(),
                    peer.bytes_out.to_string(),
                    peer.bytes_in.to_string(),
                    peer.lag.to_string(),
                    if peer.stalled {
                        "停滞".to_string()
                    } else if peer.lag > 0 {
                        "同步中".to_string()
                    } else {
                        "正常".to_string()
                    },
                    // Refused from the peer (in this node's audit log) / refused by the peer.
                    format!("收 {} / 被拒 {}", peer.refused_in, peer.refused_out),
                    peer.last_error
                        .clone()
                        .or_else(|| peer.last_refusal.clone())
                        .unwrap_or_default(),
                ]);
            }
            println!("同步状态\n{p}");
        }
        Ok(())
    }

    pub async fn credential(&self, c: CredentialCmd) -> Result<()> {
        match c {
            CredentialCmd::Add {
                name,
                role,
                password_stdin: true,
                ..
            } => {
                let hash = renda_node::access::hash_password(&password_from_stdin()?)
                    .map_err(renda_node::store::StoreError::Invalid)?;
                let shown = name.trim().to_string();
                self.store
                    .write(move |tx| tx.add_account(&name, role, &hash))
                    .await?;
                eprintln!(
                    "已创建账号“{shown}”（{}），可在看板登录页用名称和密码登录。",
                    role.label()
                );
                Ok(())
            }
            CredentialCmd::Password { name } => {
                let hash = renda_node::access::hash_password(&password_from_stdin()?)
                    .map_err(renda_node::store::StoreError::Invalid)?;
                let shown = name.trim().to_string();
                self.store
                    .write(move |tx| tx.set_password(&name, &hash))
                    .await?;
                eprintln!("已设置“{shown}”的密码，其已登录的会话全部退出。");
                Ok(())
            }
            CredentialCmd::Add {
                name,
                role,
                within,
                api,
                ..
            } => {
                let shown = name.trim().to_string();
                let within = within
                    .map(|w| RegionCode::parse("within", &w))
                    .transpose()
                    .map_err(renda_node::store::StoreError::Invalid)?;
                let token = self
                    .store
                    .write(move |tx| {
                        if api || within.is_some() {
                            tx.add_api_credential(&name, role, within)
                        } else {
                            tx.add_credential(&name, role)
                        }
                    })
                    .await?;
                if self.json {
                    println!(
                        "{}",
                        serde_json::json!({ "name": shown, "role": role, "token": token })
                    );
                } else {
                    // The token goes alone on stdout, so a script can take it; the advice goes
                    // to stderr.
                    println!("{token}");
                    eprintln!(
                        "已创建凭据“{shown}”（{}）。令牌只显示这一次，本节点只保存其哈希，请妥善转交。",
                        role.label()
                    );
                }
                Ok(())
            }
            CredentialCmd::List => {
                let all = self.store.call(|s| s.credentials()).await?;
                if self.json {
                    println!("{}", serde_json::to_string_pretty(&all)?);
                    return Ok(());
                }
                let mut t = render::table(&["名称", "角色", "创建时间", "状态"]);
                for c in &all {
                    t.add_row(vec![
                        c.name.clone(),
                        c.role.label().to_string(),
                        c.created_at
                            .with_timezone(&renda_node::calendar::china())
                            .format("%Y-%m-%d %H:%M")
                            .to_string(),
                        match (c.revoked_at, c.disabled_at) {
                            (Some(at), _) => format!(
                                "已吊销（{}）",
                                at.with_timezone(&renda_node::calendar::china())
                                    .format("%Y-%m-%d %H:%M")
                            ),
                            (None, Some(_)) => "已停用".to_string(),
                            (None, None) if c.has_password => "有效（账号）".to_string(),
                            (None, None) => "有效".to_string(),
                        },
                    ]);
                }
                println!("{t}");
                Ok(())
            }
            CredentialCmd::Revoke { name } => {
                let revoked = self
                    .store
                    .write(move |tx| tx.revoke_credential(&name))
                    .await?;
                println!("已吊销凭据“{}”，其令牌立即失效", revoked.name);
                Ok(())
            }
        }
    }

    pub async fn audit(&self, limit: u32) -> Result<()> {
        let entries = self
            .store
            .call(move |s| s.audit_log(limit as usize))
            .await?;
        if self.json {
            println!("{}", serde_json::to_string_pretty(&entries)?);
            return Ok(());
        }
        if entries.is_empty() {
            println!("没有拒收记录");
            return Ok(());
        }
        let mut t = render::table(&["时间", "发送方", "记录", "类型", "规则", "原因", "变更数"]);
        for e in &entries {
            t.add_row(vec![
                e.at.with_timezone(&renda_node::calendar::china())
                    .format("%Y-%m-%d %H:%M:%S")
                    .to_string(),
                e.peer.clone(),
                e.record.clone(),
                RecordKind::parse(&e.kind).map_or(e.kind.clone(), |k| k.label().to_string()),
                e.rule.clone(),
                e.reason.clone(),
                e.changes.to_string(),
            ]);
        }
        println!("{t}");
        Ok(())
    }

    pub async fn delegate(&self, c: DelegateCmd) -> Result<()> {
        let user = self.user.clone();
        match c {
            DelegateCmd::Add(a) => {
                let seat = self.seat(a.mandate).await?;
                let delegate = Delegate {
                    name: a.name,
                    gender: a.gender,
                    birth_year: a.birth_year,
                    ethnicity: a.ethnicity,
                    party: a.party,
                    occupation: a.occupation,
                    station: None,
                    merged_into: None,
                    merge_route: None,
                    mandates: BTreeMap::new(),
                };
                let contact = Contact {
                    name: None,
                    phone: a.phone,
                    id_number: a.id_number,
                };
                let h = self
                    .store
                    .write(move |tx| office::add_delegate(tx, &user, delegate, contact, Some(seat)))
                    .await?;
                self.created(RecordKind::Delegate, h.id);
                let id = h.id;
                let twins = self.store.call(move |s| s.likely_duplicates(&id)).await?;
                for twin in &twins {
                    eprintln!(
                        "注意：可能与已登记的 {}（编号 {}，登记于 {}）是同一人：{}",
                        twin.name, twin.id, twin.home, twin.reason
                    );
                }
            }
            DelegateCmd::Mandate(a) => {
                let seat = self.seat(a.mandate).await?;
                let h = match a.id.split_once('@') {
                    Some((id, home)) => {
                        let person = office::PersonRef {
                            id: RecordId::parse("id", id)
                                .map_err(renda_node::store::StoreError::from)?,
                            home: RegionCode::parse("id", home)
                                .map_err(renda_node::store::StoreError::from)?,
                            name: a.name.unwrap_or_default(),
                        };
                        self.store
                            .write(move |tx| office::grant_mandate_to(tx, &user, person, seat))
                            .await?
                    }
                    None => {
                        let id = self.id(RecordKind::Delegate, "id", &a.id).await?;
                        self.store
                            .write(move |tx| office::grant_mandate(tx, &user, &id, seat))
                            .await?
                    }
                };
                self.created(RecordKind::Mandate, h.id);
            }
            DelegateCmd::Station(a) => {
                let id = self.id(RecordKind::Delegate, "id", &a.id).await?;
                // Leaving needs only the venue's id, which the seat names, not the venue.
                let station = match (a.leave, a.station.split_once('@')) {
                    (Some(_), None) if RecordId::parse("station", &a.station).is_ok() => {
                        StationRef::from(
                            RecordId::parse("station", &a.station)
                                .map_err(renda_node::store::StoreError::from)?,
                        )
                    }
                    _ => self.station(&a.station).await?,
                };
                let r = self
                    .store
                    .write(move |tx| office::station_delegate(tx, &id, a.term, station, a.leave))
                    .await?;
                self.print_step(&r)?;
            }
            DelegateCmd::SetStatus(a) => {
                let id = self.id(RecordKind::Delegate, "id", &a.id).await?;
                let congress = match a.congress {
                    Some(c) => c,
                    None => self.store.call(|s| Ok(s.identity().region)).await?,
                };
                let since = day(a.date);
                let r = self
                    .store
                    .write(move |tx| {
                        office::set_mandate_status(tx, &id, congress, a.term, a.status, since)
                    })
                    .await?;
                self.print_step(&r)?;
            }
            DelegateCmd::Merge(a) => {
                let from = self.id(RecordKind::Delegate, "id", &a.id).await?;
                let into = self.id(RecordKind::Delegate, "into", &a.into).await?;
                let on = day(a.date);
                let r = self
                    .store
                    .write(move |tx| office::merge_persons(tx, &from, &into, on))
                    .await?;
                self.print_step(&r)?;
            }
            DelegateCmd::List(l) => self.list(RecordKind::Delegate, &l, None).await?,
            DelegateCmd::Roster(l) => self.list(RecordKind::Mandate, &l, None).await?,
            DelegateCmd::Show(i) => {
                let id = self.id(RecordKind::Delegate, "id", &i.id).await?;
                let (record, personal, seats, twins) = self
                    .store
                    .call(move |s| {
                        let record = match s.get(&id) {
                            Ok(r) => Some(r),
                            Err(renda_node::store::StoreError::NotFound { .. }) => None,
                            Err(e) => return Err(e),
                        };
                        let twins = match record {
                            Some(_) => s.likely_duplicates(&id)?,
                            None => Vec::new(),
                        };
                        Ok((record, s.personal_for(&id)?, s.mandates_of(&id)?, twins))
                    })
                    .await?;
                if self.json {
                    let seats: Vec<serde_json::Value> = seats
                        .iter()
                        .map(|(h, m)| serde_json::json!({ "header": h, "fields": m }))
                        .collect();
                    let person = record.as_ref().map(|r| r.to_json(personal.as_ref()));
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&serde_json::json!({
                            "person": person,
                            "mandates": seats,
                            "likely_duplicates": twins,
                        }))?
                    );
                } else {
                    if let Some(record) = &record {
                        println!("{}", render::record_text(record, personal.as_ref()));
                    } else {
                        println!("本节点没有该人员的登记记录，只持有其代表资格（进站名册）：");
                    }
                    if !seats.is_empty() {
                        let table = renda_node::record::view::seats_table(
                            seats.iter().map(|(h, m)| (&h.id, m)),
                        );
                        println!("{}", render::view_table(&table));
                    }
                    if !twins.is_empty() {
                        let mut t = render::table(&["编号", "姓名", "登记于", "为何可能重复"]);
                        for twin in &twins {
                            t.add_row(vec![
                                twin.id.to_string(),
                                twin.name.clone(),
                                twin.home.to_string(),
                                twin.reason.clone(),
                            ]);
                        }
                        println!("可能重复的人员\n{t}");
                    }
                }
            }
        }
        Ok(())
    }

    /// A station typed on the command line: `VENUE@REGION` names one this node does not hold
    /// (a township's, seen from a province); a plain id, or an id prefix, one it holds.
    async fn station(&self, text: &str) -> Result<StationRef> {
        Ok(match text.split_once('@') {
            Some((venue, region)) => StationRef {
                venue: RecordId::parse("station", venue)
                    .map_err(renda_node::store::StoreError::from)?,
                region: Some(
                    RegionCode::parse("station", region)
                        .map_err(renda_node::store::StoreError::from)?,
                ),
            },
            None => StationRef::from(self.id(RecordKind::Venue, "station", text).await?),
        })
    }

    /// The seat typed on the command line, granted by this node's congress.
    async fn seat(&self, m: MandateArgs) -> Result<SeatDraft> {
        let here = self.store.call(|s| Ok(s.identity().region)).await?;
        if let Some(congress) = m.congress
            && congress != here
        {
            return Err(renda_node::store::StoreError::from(
                renda_node::validate::ValidationError::new(
                    "congress",
                    format!(
                        "代表资格只能由授予它的人大登记：本节点是 {here}，{congress} 的代表资格请在该人大的节点上登记（renda delegate mandate）"
                    ),
                ),
            )
            .into());
        }
        let mut stations = Vec::new();
        for text in &m.stations {
            stations.push(self.station(text).await?);
        }
        Ok(SeatDraft {
            term: m.term,
            constituency: m.constituency,
            stations,
        })
    }

    pub async fn group(&self, c: GroupCmd) -> Result<()> {
        let user = self.user.clone();
        match c {
            GroupCmd::Add(a) => {
                let congress = match a.congress {
                    Some(c) => c,
                    None => self.store.call(|s| Ok(s.identity().region)).await?,
                };
                let leader = self
                    .opt_id(RecordKind::Delegate, "leader", &a.leader)
                    .await?;
                let mut members = self.ids(RecordKind::Delegate, "member", &a.members).await?;
                if let Some(l) = leader
                    && !members.contains(&l)
                {
                    members.push(l);
                }
                let venue = self.opt_id(RecordKind::Venue, "venue", &a.venue).await?;
                let group = Group {
                    name: a.name,
                    kind: a.kind,
                    field: a.field,
                    congress,
                    leader,
                    members: IdSet(members.into_iter().collect()),
                    venue,
                };
                let h = self
                    .store
                    .write(move |tx| office::add_group(tx, &user, group))
                    .await?;
                self.created(RecordKind::Group, h.id);
            }
            GroupCmd::Join { id, members } => {
                let id = self.id(RecordKind::Group, "id", &id).await?;
                let members = self.ids(RecordKind::Delegate, "member", &members).await?;
                let r = self
                    .store
                    .write(move |tx| office::join_group(tx, &id, &members))
                    .await?;
                self.print_step(&r)?;
            }
            GroupCmd::List(l) => self.list(RecordKind::Group, &l, None).await?,
            GroupCmd::Show(i) => self.show(RecordKind::Group, &i.id).await?,
        }
        Ok(())
    }

    pub async fn venue(&self, c: VenueCmd) -> Result<()> {
        let user = self.user.clone();
        match c {
            VenueCmd::Add(a) => {
                let region = match a.region {
                    Some(r) => r,
                    None => self.store.call(|s| Ok(s.identity().region)).await?,
                };
                let venue = Venue {
                    name: a.name,
                    kind: a.kind,
                    region,
                    address: a.address,
                };
                let h = self
                    .store
                    .write(move |tx| office::add_venue(tx, &user, venue))
                    .await?;
                self.created(RecordKind::Venue, h.id);
            }
            VenueCmd::List(l) => self.list(RecordKind::Venue, &l, None).await?,
            VenueCmd::Show(i) => self.show(RecordKind::Venue, &i.id).await?,
        }
        Ok(())
    }

    pub async fn activity(&self, c: ActivityCmd) -> Result<()> {
        let user = self.user.clone();
        match c {
            ActivityCmd::Add(a) => {
                let organiser = match a.organiser {
                    Some(o) => o,
                    None => self.store.call(|s| Ok(s.identity().name.clone())).await?,
                };
                let draft = ActivityDraft {
                    activity: Activity {
                        kind: a.kind,
                        date: a.date,
                        topic: a.topic,
                        organiser,
                        group: self.opt_id(RecordKind::Group, "group", &a.group).await?,
                        venue: self.opt_id(RecordKind::Venue, "venue", &a.venue).await?,
                        participants: BTreeMap::new(),
                        constituents_received: a.received,
                        outcome: a.outcome,
                    },
                    participants: self
                        .ids(RecordKind::Delegate, "participant", &a.participants)
                        .await?,
                };
                let h = self
                    .store
                    .write(move |tx| office::add_activity(tx, &user, draft))
                    .await?;
                self.created(RecordKind::Activity, h.id);
            }
            ActivityCmd::SignIn { id, delegates } => {
                let id = self.id(RecordKind::Activity, "id", &id).await?;
                let delegates = self
                    .ids(RecordKind::Delegate, "delegate", &delegates)
                    .await?;
                let r = self
                    .store
                    .write(move |tx| office::sign_in(tx, &id, &delegates))
                    .await?;
                self.print_step(&r)?;
            }
            ActivityCmd::List(l) => self.list(RecordKind::Activity, &l, None).await?,
            ActivityCmd::Show(i) => self.show(RecordKind::Activity, &i.id).await?,
        }
        Ok(())
    }

    async fn opinion_step(&self, id: &str, action: OpinionAction, date: DateArg) -> Result<()> {
        let id = self.id(RecordKind::Opinion, "id", id).await?;
        let user = self.user.clone();
        let date = day(date);
        let r = self
            .store
            .write(move |tx| office::opinion_step(tx, &user, &id, action, date))
            .await?;
        self.print_step(&r)
    }

    pub async fn opinion(&self, c: OpinionCmd) -> Result<()> {
        match c {
            OpinionCmd::Add(a) => {
                let region = match a.region {
                    Some(r) => r,
                    None => self.store.call(|s| Ok(s.identity().region)).await?,
                };
                let fields = OpinionFields {
                    source: a.source,
                    content: a.content,
                    place: a.place,
                    region,
                    delegate: self
                        .opt_id(RecordKind::Delegate, "delegate", &a.delegate)
                        .await?,
                    activity: self
                        .opt_id(RecordKind::Activity, "activity", &a.activity)
                        .await?,
                    category: a.category,
                };
                let contact = Contact {
                    name: a.constituent_name,
                    phone: a.constituent_phone,
                    id_number: None,
                };
                let user = self.user.clone();
                let date = day(a.date);
                let h = self
                    .store
                    .write(move |tx| office::add_opinion(tx, &user, fields, contact, date))
                    .await?;
                self.created(RecordKind::Opinion, h.id);
                Ok(())
            }
            OpinionCmd::Answer { id, reply, date } => {
                self.opinion_step(&id, OpinionAction::AnswerOnSpot { reply }, date)
                    .await
            }
            OpinionCmd::PassOn { id, to, date } => {
                self.opinion_step(&id, OpinionAction::PassOn { to, congress: None }, date)
                    .await
            }
            OpinionCmd::Start { id, note, date } => {
                self.opinion_step(&id, OpinionAction::Start { note }, date)
                    .await
            }
            OpinionCmd::Handle { id, result, date } => {
                self.opinion_step(&id, OpinionAction::Handle { result }, date)
                    .await
            }
            OpinionCmd::Rate { id, rating, date } => {
                self.opinion_step(&id, OpinionAction::Rate { rating }, date)
                    .await
            }
            OpinionCmd::List(l) => self.list(RecordKind::Opinion, &l, None).await,
            OpinionCmd::Show(i) => self.show(RecordKind::Opinion, &i.id).await,
        }
    }

    async fn suggestion_step(
        &self,
        id: &str,
        action: SuggestionAction,
        date: DateArg,
    ) -> Result<()> {
        let id = self.id(RecordKind::Suggestion, "id", id).await?;
        let user = self.user.clone();
        let date = day(date);
        let r = self
            .store
            .write(move |tx| office::suggestion_step(tx, &user, &id, action, date))
            .await?;
        self.print_step(&r)
    }

    pub async fn suggestion(&self, c: SuggestionCmd) -> Result<()> {
        use SuggestionAction as A;
        match c {
            SuggestionCmd::Submit(a) => {
                let to = match a.to {
                    Some(t) => t,
                    None => self.store.call(|s| Ok(s.identity().region)).await?,
                };
                let draft = SuggestionDraft {
                    title: a.title,
                    body: a.body,
                    category: a.category,
                    lead: self.id(RecordKind::Delegate, "lead", &a.lead).await?,
                    cosigners: self
                        .ids(RecordKind::Delegate, "cosigner", &a.cosigners)
                        .await?,
                    addressed_to: to,
                    session: a.session,
                    group: self.opt_id(RecordKind::Group, "group", &a.group).await?,
                };
                let user = self.user.clone();
                let date = day(a.date);
                let h = self
                    .store
                    .write(move |tx| office::submit_suggestion(tx, &user, draft, date))
                    .await?;
                self.created(RecordKind::Suggestion, h.id);
                Ok(())
            }
            SuggestionCmd::Screen {
                id,
                accept,
                number,
                reason,
                date,
                ..
            } => {
                let action = A::Screen {
                    accepted: accept,
                    number,
                    reason,
                };
                self.suggestion_step(&id, action, date).await
            }
            SuggestionCmd::Assign {
                id,
                lead_unit,
                assist_units,
                separate_units,
                date,
            } => {
                let mut units = Vec::new();
                if let Some(lead) = lead_unit {
                    units.push(UnitAssignment {
                        unit: lead,
                        role: UnitRole::Lead,
                    });
                }
                units.extend(assist_units.into_iter().map(|unit| UnitAssignment {
                    unit,
                    role: UnitRole::Assist,
                }));
                units.extend(separate_units.into_iter().map(|unit| UnitAssignment {
                    unit,
                    role: UnitRole::Separate,
                }));
                self.suggestion_step(&id, A::Assign { units }, date).await
            }
            SuggestionCmd::SendBack {
                id,
                unit,
                reason,
                date,
            } => {
                self.suggestion_step(&id, A::SendBack { unit, reason }, date)
                    .await
            }
            SuggestionCmd::Extend {
                id,
                until,
                reason,
                date,
            } => {
                self.suggestion_step(&id, A::Extend { until, reason }, date)
                    .await
            }
            SuggestionCmd::Answer {
                id,
                unit,
                class,
                text,
                date,
            } => {
                self.suggestion_step(&id, A::Answer { unit, class, text }, date)
                    .await
            }
            SuggestionCmd::Evaluate {
                id,
                result,
                comment,
                date,
            } => {
                self.suggestion_step(&id, A::Evaluate { result, comment }, date)
                    .await
            }
            SuggestionCmd::Track {
                id,
                note,
                solved,
                date,
            } => {
                self.suggestion_step(&id, A::Track { note, solved }, date)
                    .await
            }
            SuggestionCmd::Close { id, date } => self.suggestion_step(&id, A::Close, date).await,
            SuggestionCmd::Supervise { id, off, date } => {
                self.suggestion_step(&id, A::Supervise { key: !off }, date)
                    .await
            }
            SuggestionCmd::List { list, overdue, on } => {
                let overdue_on = overdue.then(|| on.unwrap_or_else(today));
                self.list(RecordKind::Suggestion, &list, overdue_on).await
            }
            SuggestionCmd::Show(i) => self.show(RecordKind::Suggestion, &i.id).await,
        }
    }

    pub async fn notice(&self, c: NoticeCmd) -> Result<()> {
        match c {
            NoticeCmd::Add {
                title,
                body,
                category,
                audience,
                date,
            } => {
                let audience = match audience {
                    Some(a) => a,
                    None => self.store.call(|s| Ok(s.identity().region)).await?,
                };
                let notice = Notice {
                    title,
                    body,
                    category,
                    issued_on: day(date),
                    audience,
                };
                let user = self.user.clone();
                let h = self
                    .store
                    .write(move |tx| office::add_notice(tx, &user, notice))
                    .await?;
                self.created(RecordKind::Notice, h.id);
                Ok(())
            }
            NoticeCmd::List(l) => self.list(RecordKind::Notice, &l, None).await,
            NoticeCmd::Show(i) => self.show(RecordKind::Notice, &i.id).await,
        }
    }

    pub async fn motion(&self, c: MotionCmd) -> Result<()> {
        use renda_node::office::{DecisionDraft, MotionDraft, ProposerDraft};
        match c {
            MotionCmd::Submit(a) => {
                let proposer = match (a.lead, a.delegation, a.proposer) {
                    (Some(lead), _, _) => ProposerDraft::Delegates {
                        lead: self.id(RecordKind::Delegate, "lead", &lead).await?,
                        cosigners: self
                            .ids(RecordKind::Delegate, "cosigner", &a.cosigners)
                            .await?,
                    },
                    (None, Some(name), _) => ProposerDraft::Delegation(name),
                    (None, None, Some(body)) => ProposerDraft::Body {
                        body,
                        name: a.committee,
                    },
                    (None, None, None) => {
                        return Err(renda_node::store::StoreError::Invalid(
                            renda_node::validate::ValidationError::new(
                                "proposer",
                                "须写明提出者：--lead 与 --cosigner、--delegation 或 --proposer",
                            ),
                        )
                        .into());
                    }
                };
                let draft = MotionDraft {
                    title: a.title,
                    body: a.body,
                    session: a.session,
                    deadline: a.deadline,
                    proposer,
                };
                let user = self.user.clone();
                let date = day(a.date);
                let h = self
                    .store
                    .write(move |tx| office::submit_motion(tx, &user, draft, date))
                    .await?;
                self.created(RecordKind::Motion, h.id);
                Ok(())
            }
            MotionCmd::Decide {
                id,
                agenda: _,
                refer,
                to_suggestion,
                category,
                date,
            } => {
                let id = self.id(RecordKind::Motion, "id", &id).await?;
                let decision = match (refer, to_suggestion, category) {
                    (Some(committee), _, _) => DecisionDraft::ReferToCommittee(committee),
                    (None, true, Some(category)) => DecisionDraft::ConvertToSuggestion { category },
                    _ => DecisionDraft::ListOnAgenda,
                };
                let user = self.user.clone();
                let date = day(date);
                let r = self
                    .store
                    .write(move |tx| office::decide_motion(tx, &user, &id, decision, date))
                    .await?;
                self.print_step(&r)
            }
            MotionCmd::Committees { add } => {
                let known = self
                    .store
                    .write(move |tx| {
                        for name in &add {
                            if tx.add_special_committee(name)? {
                                eprintln!("已登记专门委员会：{}", name.trim());
                            }
                        }
                        tx.special_committees()
                    })
                    .await?;
                if self.json {
                    println!("{}", serde_json::to_string_pretty(&known)?);
                } else if known.is_empty() {
                    println!("本级人大没有登记专门委员会");
                } else {
                    for name in known {
                        println!("{name}");
                    }
                }
                Ok(())
            }
            MotionCmd::List(l) => self.list(RecordKind::Motion, &l, None).await,
            MotionCmd::Show(i) => self.show(RecordKind::Motion, &i.id).await,
        }
    }

    pub async fn quota(&self, c: QuotaCmd) -> Result<()> {
        use renda_node::office::{QuotaRuleDraft, QuotaRuleSet};
        let today = renda_node::calendar::today();
        match c {
            QuotaCmd::Set {
                subject,
                group_kind,
                counts,
                activity_kinds,
                per,
                minimum,
                from,
                basis,
            } => {
                let draft = QuotaRuleDraft {
                    subject,
                    group_kind,
                    counts,
                    activity_kinds: activity_kinds.into_iter().collect(),
                    period: per,
                    minimum,
                    from: from.unwrap_or(today),
                    basis,
                };
                let user = self.user.clone();
                match self
                    .store
                    .write(move |tx| office::set_quota_rule(tx, &user, draft))
                    .await?
                {
                    QuotaRuleSet::Created { id, ended } => {
                        for old in ended {
                            eprintln!("同一要求的原规定 {old} 于新规定生效之日停止");
                        }
                        self.created(RecordKind::QuotaRule, id);
                    }
                    QuotaRuleSet::Unchanged(id) => {
                        println!("{id}");
                        eprintln!("相同的要求 {id} 已经生效，未作改动");
                    }
                }
                Ok(())
            }
            QuotaCmd::End { id, on } => {
                let id = self.id(RecordKind::QuotaRule, "id", &id).await?;
                let on = on.unwrap_or(today);
                let record = self
                    .store
                    .write(move |tx| office::end_quota_rule(tx, &id, on))
                    .await?;
                eprintln!("履职要求 {id} 自 {on} 起停止");
                self.print_record(&record, None)
            }
            QuotaCmd::List { on, all } => {
                let on = on.unwrap_or(today);
                let rules = self
                    .store
                    .call(move |s| {
                        let me = s.identity().region;
                        let mut out = Vec::new();
                        for congress in std::iter::once(me).chain(me.ancestors()) {
                            out.extend(s.quota_rules(&congress)?);
                        }
                        Ok(out)
                    })
                    .await?;
                let shown: Vec<_> = rules
                    .into_iter()
                    .filter(|(_, r)| all || r.in_force_on(on))
                    .collect();
                if self.json {
                    let rows: Vec<_> = shown
                        .iter()
                        .map(|(id, r)| serde_json::json!({ "id": id, "rule": r, "text": r.describe() }))
                        .collect();
                    println!("{}", serde_json::to_string_pretty(&rows)?);
                } else {
                    println!("{}", render::quota_rules(&shown, on));
                }
                Ok(())
            }
            QuotaCmd::Status {
                year,
                short,
                subject,
            } => {
                use chrono::Datelike;
                let year = year.unwrap_or(today.year());
                let (rules, mut standings) = self
                    .store
                    .call(move |s| s.quota_standings(year, today))
                    .await?;
                standings.retain(|s| {
                    (!short || s.falling_short()) && subject.is_none_or(|k| k == s.subject)
                });
                if self.json {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&serde_json::json!({
                            "year": year, "as_of": renda_node::record::quota::judged_on(year, today),
                            "rules": rules, "standings": standings,
                        }))?
                    );
                } else {
                    println!("{}", render::quota_standings(year, &rules, &standings));
                }
                Ok(())
            }
        }
    }

    /// Writes opinions one committed transaction at a time and prints each id only after its
    /// commit returned: the crash test kills this process and checks every printed id survived.
    pub async fn write_loop(&self, count: u32) -> Result<()> {
        use std::io::Write;
        let region = self.store.call(|s| Ok(s.identity().region)).await?;
        for i in 0..count {
            let fields = OpinionFields {
                source: renda_node::record::opinion::OpinionSource::QrCode,
                content: format!("第{i}条测试民情：村道路灯损坏，夜间出行不便"),
                place: "村委会门口".into(),
                region,
                delegate: None,
                activity: None,
                category: None,
            };
            let user = self.user.clone();
            let h = self
                .store
                .write(move |tx| {
                    office::add_opinion(tx, &user, fields, Contact::default(), today())
                })
                .await
                .context("write loop")?;
            let mut out = std::io::stdout().lock();
            writeln!(out, "{}", h.id)?;
            out.flush()?;
        }
        Ok(())
    }
}

impl Session {
    /// The node's data directory.
    async fn data_dir(&self) -> Result<std::path::PathBuf> {
        let db = self.store.call(|s| Ok(s.path().to_path_buf())).await?;
        Ok(db
            .parent()
            .unwrap_or(std::path::Path::new("."))
            .to_path_buf())
    }

    /// The node's certificate, if one is installed; a broken installation is an error, never a
    /// silent fall back to plaintext.
    async fn node_tls(&self) -> Result<Option<renda_node::tls::NodeTls>> {
        let dir = self.data_dir().await?;
        let region = self.store.call(|s| Ok(s.identity().region)).await?;
        Ok(renda_node::tls::NodeTls::installed(&dir, region)?)
    }
}

/// Warns the operator of a node certificate close to its end.
fn warn_if_expiring(tls: Option<&renda_node::tls::NodeTls>) {
    if let Some(tls) = tls {
        let left = (tls.not_after() - chrono::Utc::now()).num_days();
        if left < CERT_WARN_DAYS {
            tracing::warn!(not_after = %tls.not_after(), "the node certificate expires in {left} days");
            eprintln!(
                "注意：本节点证书将于 {} 到期（剩余 {left} 天），请尽快用 renda ca issue 换发",
                tls.not_after().format("%Y-%m-%d")
            );
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM (systemd's stop).
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The start of a node that could not start, as the error the binary reports: a store, a
/// certificate or an HTTPS error keeps its type, so its exit status is the one it always had.
fn start_error(e: renda_node::node::StartError) -> anyhow::Error {
    use renda_node::node::StartError;
    match e {
        StartError::Store(e) => e.into(),
        StartError::Certificate(e) => e.into(),
        StartError::Part(e) => match e.downcast::<renda_hub::https::HttpsError>() {
            Ok(e) => anyhow::Error::new(*e),
            Err(e) => anyhow::anyhow!(e),
        },
        e @ StartError::Bind { .. } => e.into(),
    }
}

/// `renda run`: starts the node `config` describes and runs it until Ctrl-C or SIGTERM, or
/// until its database is found damaged; then stops it gracefully, whatever ended the run.
pub async fn run_node(config: renda_node::node::NodeConfig) -> Result<()> {
    let initialising = config
        .init
        .clone()
        .filter(|_| !config.data_dir.join(renda_node::store::DB_FILE).exists());
    let data_dir = config.data_dir.clone();
    let node = renda_hub::node::Node::start(config)
        .await
        .map_err(start_error)?;
    if let Some(new) = initialising {
        println!(
            "已按配置初始化节点 {}（{}）于 {}",
            new.name,
            new.region,
            data_dir.display()
        );
    }
    let outcome = serve_until_stopped(&node).await;
    println!("正在停止节点");
    node.shutdown().await;
    outcome
}

/// A password typed or piped on stdin: its first line, without the line's end.
fn password_from_stdin() -> Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("reading the password from stdin")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// Says where the running node serves, then waits for Ctrl-C, SIGTERM or damage.
async fn serve_until_stopped(node: &renda_hub::node::Node) -> Result<()> {
    warn_if_expiring(node.link_config().tls.as_deref());
    let scheme = if node.https() { "https" } else { "http" };
    if let Some(bound) = node.http_addr() {
        println!("看板：{scheme}://{bound}/");
        let live = node
            .store()
            .call(|s| Ok(s.credentials()?.iter().filter(|c| c.is_live()).count()))
            .await?;
        if live == 0 {
            tracing::warn!("no credential exists: nobody can log in to the dashboard");
            eprintln!(
                "注意：本节点还没有任何凭据，看板无法登录。请用 renda credential add --name 姓名 --role viewer 创建。"
            );
        }
    }
    if let Some(bound) = node.metrics_addr() {
        println!("监控指标：{scheme}://{bound}/metrics");
    }
    if let Some(bound) = node.query_addr() {
        let tls = if node.https() {
            "TLS"
        } else {
            "明文，仅本机"
        };
        println!("查询接口（gRPC，{tls}）：{bound}");
    }
    if let Some(bound) = node.sync_addr() {
        println!(
            "{}（{}）正在 {bound} 接受下级节点同步",
            node.name(),
            node.region()
        );
    }
    if let Some(parent) = node.parent_addr() {
        println!("与上级节点 {parent} 保持同步");
    }
    tokio::select! {
        () = shutdown_signal() => Ok(()),
        damage = node.failed() => Err(damage.into()),
    }
}

impl Session {
    /// Computes and prints this node's rollup, or prints a descendant's.
    pub async fn rollup(&self, args: RollupArgs) -> Result<()> {
        let identity = self.store.call(|s| Ok(s.identity().clone())).await?;
        if args.verify {
            let today = renda_node::calendar::today();
            let differ = self
                .store
                .read(move |s| s.verify_own_counters(today))
                .await?;
            if differ.is_empty() {
                println!("本节点自身的计数与逐条重算的结果一致");
                return Ok(());
            }
            for line in &differ {
                eprintln!("  {line}");
            }
            return Err(anyhow::anyhow!(
                "本节点自身的计数与逐条重算的结果不一致（{} 项），请报告此问题；renda rebuild 可从记录重建",
                differ.len()
            ));
        }
        let region = args.region.unwrap_or(identity.region);
        if args.rules.names_quotas() {
            let me = identity.region;
            let has_rules = self
                .store
                .call(move |s| Ok(!s.quota_rules(&me)?.is_empty()))
                .await?;
            if has_rules {
                eprintln!(
                    "提示：履职标准参数只为尚无履职要求的人大设定初始要求；本级已有履职要求，未按参数改动，请用 renda quota set 修改"
                );
            }
        }
        let rollup = if region == identity.region {
            renda_node::rollups::refresh(
                &self.store,
                args.rules.rules(crate::config::Source::Flags)?,
            )
            .await?
        } else {
            self.store
                .call(move |s| s.rollup(&region))
                .await?
                .ok_or_else(|| {
                    renda_node::store::StoreError::Invalid(
                        renda_node::validate::ValidationError::new(
                            "region",
                            format!(
                                "本节点没有 {region} 的汇总：它不在本节点的辖区内，或还没有同步上来"
                            ),
                        ),
                    )
                })?
        };
        if self.json {
            println!("{}", serde_json::to_string_pretty(&rollup)?);
        } else {
            println!("{}", render::rollup(&region, &rollup));
        }
        Ok(())
    }

    /// One full round with the parent both ways.
    pub async fn sync_once(&self, args: SyncArgs) -> Result<()> {
        use crate::config::Source;
        let repair = args.repair;
        let rules = args.rollup.rules(Source::Flags)?;
        let mut config = args.link.link_config(Source::Flags)?;
        let identity = self.store.call(|s| Ok(s.identity().clone())).await?;
        let Some(parent) = identity.parent_addr.clone() else {
            return Err(renda_node::store::StoreError::Invalid(
                renda_node::validate::ValidationError::new(
                    "parent",
                    "本节点还没有上级节点地址，请先运行 renda attach --parent HOST:PORT",
                ),
            )
            .into());
        };
        // The parent gets this node's current numbers with this round.
        renda_node::rollups::refresh(&self.store, rules).await?;
        let tls = self.node_tls().await?;
        warn_if_expiring(tls.as_ref());
        if tls.is_none() {
            tracing::warn!(
                "no certificate in the data directory's tls/: links are plaintext; install one with renda ca issue --out <data dir>/tls"
            );
        }
        config.tls = tls.map(std::sync::Arc::new);
        config.repair = repair;
        let result = renda_node::sync::client::sync_with_parent(
            self.store.clone(),
            identity.region,
            &parent,
            renda_node::sync::Mode::Once,
            config,
        )
        .await;
        match result {
            Ok(report) => {
                if self.json {
                    println!(
                        "{}",
                        serde_json::json!({
                            "changes_sent": report.changes_sent, "bytes_sent": report.bytes_sent,
                            "changes_received": report.changes_received, "bytes_received": report.bytes_received,
                        })
                    );
                } else {
                    println!(
                        "已与上级节点 {parent} 同步：发出 {} 条变更（{} 字节），收到 {} 条变更（{} 字节）",
                        report.changes_sent,
                        report.bytes_sent,
                        report.changes_received,
                        report.bytes_received
                    );
                }
                Ok(())
            }
            Err(e) => {
                if let Some(up) = identity.region.parent() {
                    let text = e.to_string();
                    let _ = self
                        .store
                        .write(move |tx| tx.record_link_error(&up, &text))
                        .await;
                }
                Err(anyhow::Error::new(e).context(format!("与上级节点 {parent} 同步失败")))
            }
        }
    }
}
