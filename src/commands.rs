//! Runs a parsed command against the node's store. Glue only: the rules live in `renda_node`.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use chrono::NaiveDate;
use renda_node::office::{self, ActivityDraft, Contact, SuggestionDraft};
use renda_node::record::activity::Activity;
use renda_node::record::delegate::{Delegate, Mandate, MandateStatus};
use renda_node::record::group::{Group, Venue};
use renda_node::record::notice::Notice;
use renda_node::record::opinion::{OpinionAction, OpinionFields};
use renda_node::record::suggestion::{SuggestionAction, UnitAssignment, UnitRole};
use renda_node::record::{Body, IdSet, Record, RecordId, RecordKind};
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
            _ => println!("已更新 {}", record.header.id),
        }
        Ok(())
    }

    pub async fn run(&self, command: Command) -> Result<()> {
        match command {
            Command::Status => self.status().await,
            Command::Delegate(c) => self.delegate(c).await,
            Command::Group(c) => self.group(c).await,
            Command::Venue(c) => self.venue(c).await,
            Command::Activity(c) => self.activity(c).await,
            Command::Opinion(c) => self.opinion(c).await,
            Command::Suggestion(c) => self.suggestion(c).await,
            Command::Notice(c) => self.notice(c).await,
            Command::Debug(DebugCmd::WriteLoop { count }) => self.write_loop(count).await,
            Command::Run(a) => self.run_node(a).await,
            Command::Sync(a) => self.sync_once(a.link, a.repair).await,
            Command::Rollup(a) => self.rollup(a).await,
            Command::Credential(c) => self.credential(c).await,
            Command::Audit { limit } => self.audit(limit).await,
            Command::Backup { to } => {
                let shown = to.display().to_string();
                self.store.call(move |s| s.backup_to(&to)).await?;
                println!("已备份到 {shown}");
                Ok(())
            }
            Command::Attach { parent } => {
                let shown = parent.clone();
                self.store.call(move |s| s.set_parent_addr(&parent)).await?;
                println!("已设置上级节点地址：{shown}");
                Ok(())
            }
            Command::Init(_)
            | Command::Demo(_)
            | Command::Bench(_)
            | Command::Ca(_)
            | Command::Check
            | Command::Rebuild { .. }
            | Command::Restore { .. } => {
                unreachable!("handled before a session is opened")
            }
        }
    }

    async fn status(&self) -> Result<()> {
        let (identity, stats, peers) = self
            .store
            .call(|s| Ok((s.identity().clone(), s.stats()?, s.peers()?)))
            .await?;
        // The certificate is shown, not required: a broken one is reported here, not fatal.
        let certificate = match self.node_tls().await {
            Ok(Some(tls)) => {
                let left = (tls.not_after - chrono::Utc::now()).num_days();
                if left < CERT_WARN_DAYS {
                    tracing::warn!(not_after = %tls.not_after, "the node certificate expires in {left} days");
                }
                serde_json::json!({ "installed": true, "not_after": tls.not_after, "days_left": left })
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
                (Some(until), Some(left), _) => format!("有效至 {until}（剩余 {left} 天）"),
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
        t.add_row(vec![
            "本地变更序列".to_string(),
            format!("{} 条（至 {}）", stats.changes, stats.last_seq),
        ]);
        t.add_row(vec![
            "数据库大小".to_string(),
            format!("{:.1} KiB", stats.file_bytes as f64 / 1024.0),
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

    async fn credential(&self, c: CredentialCmd) -> Result<()> {
        match c {
            CredentialCmd::Add { name, role } => {
                let shown = name.trim().to_string();
                let token = self
                    .store
                    .write(move |tx| tx.add_credential(&name, role))
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
                        match c.revoked_at {
                            Some(at) => format!(
                                "已吊销（{}）",
                                at.with_timezone(&renda_node::calendar::china())
                                    .format("%Y-%m-%d %H:%M")
                            ),
                            None => "有效".to_string(),
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

    async fn audit(&self, limit: u32) -> Result<()> {
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

    async fn delegate(&self, c: DelegateCmd) -> Result<()> {
        let user = self.user.clone();
        match c {
            DelegateCmd::Add(a) => {
                let station = self
                    .opt_id(RecordKind::Venue, "station", &a.station)
                    .await?;
                let mandate = self.mandate(a.mandate).await?;
                let delegate = Delegate {
                    name: a.name,
                    gender: a.gender,
                    birth_year: a.birth_year,
                    ethnicity: a.ethnicity,
                    party: a.party,
                    occupation: a.occupation,
                    station,
                    mandates: BTreeMap::from([(
                        Mandate::key(&mandate.congress, mandate.term),
                        mandate,
                    )]),
                };
                let contact = Contact {
                    name: None,
                    phone: a.phone,
                    id_number: a.id_number,
                };
                let h = self
                    .store
                    .write(move |tx| office::add_delegate(tx, &user, delegate, contact))
                    .await?;
                self.created(RecordKind::Delegate, h.id);
            }
            DelegateCmd::Mandate(a) => {
                let id = self.id(RecordKind::Delegate, "id", &a.id).await?;
                let mandate = self.mandate(a.mandate).await?;
                let r = self
                    .store
                    .write(move |tx| office::add_mandate(tx, &id, mandate))
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
            DelegateCmd::List(l) => self.list(RecordKind::Delegate, &l, None).await?,
            DelegateCmd::Show(i) => self.show(RecordKind::Delegate, &i.id).await?,
        }
        Ok(())
    }

    async fn mandate(&self, m: MandateArgs) -> Result<Mandate> {
        let congress = match m.congress {
            Some(c) => c,
            None => self.store.call(|s| Ok(s.identity().region)).await?,
        };
        Ok(Mandate {
            congress,
            level: congress
                .level()
                .unwrap_or(renda_node::region::Level::Township),
            term: m.term,
            constituency: m.constituency,
            status: MandateStatus::Serving,
            status_since: None,
        })
    }

    async fn group(&self, c: GroupCmd) -> Result<()> {
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

    async fn venue(&self, c: VenueCmd) -> Result<()> {
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

    async fn activity(&self, c: ActivityCmd) -> Result<()> {
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

    async fn opinion(&self, c: OpinionCmd) -> Result<()> {
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
                self.opinion_step(&id, OpinionAction::PassOn { to }, date)
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

    async fn suggestion(&self, c: SuggestionCmd) -> Result<()> {
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
            SuggestionCmd::Track { id, note, date } => {
                self.suggestion_step(&id, A::Track { note }, date).await
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

    async fn notice(&self, c: NoticeCmd) -> Result<()> {
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

    /// Writes opinions one committed transaction at a time and prints each id only after its
    /// commit returned: the crash test kills this process and checks every printed id survived.
    async fn write_loop(&self, count: u32) -> Result<()> {
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
    /// The node's TLS directory, `<data dir>/tls`.
    async fn tls_dir(&self) -> Result<std::path::PathBuf> {
        let db = self.store.call(|s| Ok(s.path().to_path_buf())).await?;
        Ok(db
            .parent()
            .unwrap_or(std::path::Path::new("."))
            .join(renda_node::tls::TLS_DIR))
    }

    /// The node's certificate, if one is installed; a broken installation is an error, never a
    /// silent fall back to plaintext.
    async fn node_tls(&self) -> Result<Option<renda_node::tls::NodeTls>> {
        let dir = self.tls_dir().await?;
        if !dir.exists() {
            return Ok(None);
        }
        let region = self.store.call(|s| Ok(s.identity().region)).await?;
        Ok(Some(renda_node::tls::NodeTls::load(&dir, region)?))
    }

    async fn link_config(&self, link: LinkArgs) -> Result<renda_node::sync::LinkConfig> {
        let tls = self.node_tls().await?;
        if let Some(tls) = &tls {
            let left = (tls.not_after - chrono::Utc::now()).num_days();
            if left < CERT_WARN_DAYS {
                tracing::warn!(not_after = %tls.not_after, "the node certificate expires in {left} days");
                eprintln!(
                    "注意：本节点证书将于 {} 到期（剩余 {left} 天），请尽快用 renda ca issue 换发",
                    tls.not_after.format("%Y-%m-%d")
                );
            }
        }
        if tls.is_none() {
            tracing::warn!(
                "no certificate in the data directory's tls/: links are plaintext; install one with renda ca issue --out <data dir>/tls"
            );
        }
        Ok(renda_node::sync::LinkConfig {
            max_batch_bytes: link.batch_bytes as usize,
            timeout: std::time::Duration::from_secs(u64::from(link.link_timeout_secs)),
            tls: tls.map(std::sync::Arc::new),
            policy: renda_node::route::RoutePolicy {
                full_record_depth: link.full_record_depth,
            },
            ..Default::default()
        })
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

impl Session {
    /// Serves children and keeps a live link to the parent until Ctrl-C or SIGTERM.
    async fn run_node(&self, args: RunArgs) -> Result<()> {
        let identity = self.store.call(|s| Ok(s.identity().clone())).await?;
        if args.listen.is_none() && identity.parent_addr.is_none() && args.http.is_none() {
            return Err(renda_node::store::StoreError::Invalid(renda_node::validate::ValidationError::new(
                "listen",
                "没有可运行的服务：请用 --listen 接受下级节点、--http 提供看板，或用 renda attach --parent HOST:PORT 设置上级节点",
            ))
            .into());
        }
        let config = self.link_config(args.link).await?;
        let timeout = config.timeout;
        self.store
            .write(move |tx| tx.set_link_timeout(timeout))
            .await?;
        // Plain HTTP only on loopback: logins and session cookies must not cross a network in
        // clear, and the metrics say which links are down.
        let https = match (&args.https_cert, &args.https_key) {
            (Some(cert), Some(key)) => Some(renda_hub::https::server_config(cert, key)?),
            _ => None,
        };
        if let Some(addr) = args.http {
            renda_hub::https::check_plain("http", addr, https.is_some())?;
        }
        if let Some(addr) = args.metrics {
            renda_hub::https::check_plain("metrics", addr, https.is_some())?;
        }
        let scheme = if https.is_some() { "https" } else { "http" };
        // A quick check of every page of the database, on its own read-only connection so
        // that nothing waits behind it; a damaged file stops the node before it syncs.
        let db = self.store.call(|s| Ok(s.path().to_path_buf())).await?;
        let checking = tokio::task::spawn_blocking(move || {
            let dir = db
                .parent()
                .unwrap_or(std::path::Path::new("."))
                .to_path_buf();
            renda_node::store::check::quick_check(&dir)
        });
        let mut tasks = tokio::task::JoinSet::new();
        if let Some(addr) = args.http {
            let listener = renda_hub::dashboard::bind(addr)
                .await
                .with_context(|| format!("cannot serve the dashboard on {addr}"))?;
            let bound = listener.local_addr()?;
            let dashboard = renda_hub::dashboard::Dashboard::new(
                self.store.clone(),
                identity.region,
                identity.name.clone(),
            );
            tracing::info!(region = %identity.region, %bound, "serving the dashboard");
            println!("看板：{scheme}://{bound}/");
            let live = self
                .store
                .call(|s| {
                    Ok(s.credentials()?
                        .iter()
                        .filter(|c| c.revoked_at.is_none())
                        .count())
                })
                .await?;
            if live == 0 {
                tracing::warn!("no credential exists: nobody can log in to the dashboard");
                eprintln!(
                    "注意：本节点还没有任何凭据，看板无法登录。请用 renda credential add --name 姓名 --role viewer 创建。"
                );
            }
            let tls = https.clone();
            tasks.spawn(async move {
                let served = match tls {
                    Some(tls) => {
                        renda_hub::dashboard::serve_tls(
                            listener,
                            dashboard,
                            tls,
                            std::future::pending(),
                        )
                        .await
                    }
                    None => {
                        renda_hub::dashboard::serve(listener, dashboard, std::future::pending())
                            .await
                    }
                };
                if let Err(e) = served {
                    tracing::error!(error = %e, "the dashboard stopped");
                }
            });
        }
        if let Some(addr) = args.metrics {
            let listener = renda_hub::dashboard::bind(addr)
                .await
                .with_context(|| format!("cannot serve metrics on {addr}"))?;
            let bound = listener.local_addr()?;
            let not_after = config.tls.as_ref().map(|t| t.not_after);
            let metrics =
                renda_hub::metrics::Metrics::new(self.store.clone(), identity.region, not_after);
            tracing::info!(region = %identity.region, %bound, "serving metrics");
            println!("监控指标：{scheme}://{bound}/metrics");
            let tls = https.clone();
            tasks.spawn(async move {
                if let Err(e) =
                    renda_hub::metrics::serve(listener, metrics, tls, std::future::pending()).await
                {
                    tracing::error!(error = %e, "the metrics endpoint stopped");
                }
            });
        }
        // Sync is served, and the link to the parent started, only once the database has been
        // read through; the dashboard and metrics answer meanwhile.
        match checking.await {
            Ok(Ok(())) => tracing::info!("database check passed"),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "the database check found damage; stopping");
                return Err(e.into());
            }
            Err(e) => return Err(anyhow::anyhow!("the database check did not finish: {e}")),
        }
        if let Some(addr) = args.listen {
            let listener = renda_hub::sync_server::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr}"))?;
            let bound = listener.local_addr()?;
            let service = renda_hub::sync_server::SyncService::new(
                self.store.clone(),
                identity.region,
                config.clone(),
            );
            tracing::info!(region = %identity.region, %bound, "serving children");
            println!(
                "{}（{}）正在 {bound} 接受下级节点同步",
                identity.name, identity.region
            );
            tasks.spawn(async move {
                if let Err(e) =
                    renda_hub::sync_server::serve(listener, service, std::future::pending()).await
                {
                    tracing::error!(error = %e, "the sync server stopped");
                }
            });
        }
        tasks.spawn(renda_hub::rollups::keep_fresh(
            self.store.clone(),
            std::time::Duration::from_secs(2),
            args.link.rollup.rules(),
        ));
        if let Some(parent) = identity.parent_addr.clone() {
            println!("与上级节点 {parent} 保持同步");
            tasks.spawn(renda_node::sync::client::keep_linked(
                self.store.clone(),
                identity.region,
                parent,
                config,
            ));
        }
        let mut damaged = self.store.damaged();
        tokio::select! {
            () = shutdown_signal() => {}
            found = damaged.wait_for(Option::is_some) => {
                let damage = found.ok().and_then(|d| d.clone());
                tasks.shutdown().await;
                if let Some(damage) = damage {
                    return Err(renda_node::store::StoreError::Damaged(damage).into());
                }
                return Err(anyhow::anyhow!("the store stopped"));
            }
        }
        println!("正在停止节点");
        tasks.shutdown().await;
        Ok(())
    }

    /// Computes and prints this node's rollup, or prints a descendant's.
    async fn rollup(&self, args: RollupArgs) -> Result<()> {
        let identity = self.store.call(|s| Ok(s.identity().clone())).await?;
        let region = args.region.unwrap_or(identity.region);
        let rollup = if region == identity.region {
            renda_hub::rollups::refresh(&self.store, args.rules.rules()).await?
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
    async fn sync_once(&self, link: LinkArgs, repair: bool) -> Result<()> {
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
        renda_hub::rollups::refresh(&self.store, link.rollup.rules()).await?;
        let result = renda_node::sync::client::sync_with_parent(
            self.store.clone(),
            identity.region,
            &parent,
            renda_node::sync::Mode::Once,
            renda_node::sync::LinkConfig {
                repair,
                ..self.link_config(link).await?
            },
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
