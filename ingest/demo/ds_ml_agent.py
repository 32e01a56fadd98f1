"""DS-ML agent: org-scoped sessions with string ids, conversation turns (a user
message and, when answered, an assistant message), uploaded files and
analysis results."""

import itertools
from dataclasses import dataclass
from datetime import timedelta

from chats.models import Chat, Message, UploadedFile
from core.models import AppUser, Source
from reports.models import AnalysisResult

from . import catalog, texts

DS = Source.Kind.DS_ML_AGENT
USER, ASSISTANT = Message.Role.USER, Message.Role.ASSISTANT


@dataclass
class Turn:
    agent_type: str
    question: str
    answer: str | None
    context: dict
    gap: float  # seconds before the question
    thinking: float  # seconds until the answer


def make_users(ctx):
    """String user ids such as 'user_jane_smith_456', each in an organisation."""
    source = ctx.sources[DS]
    users = []
    for _ in range(ctx.count("ds_users")):
        first, last = ctx.people.name()
        base = f"user_{first}_{last}_{ctx.rng.randint(100, 999)}".lower()
        user_id = ctx.people.claim_username(base)
        user = AppUser(
            source=source,
            source_pk=user_id,
            username=user_id,
            organization=ctx.organization(),
            created_at=ctx.signup_time(),
        )
        users.append(ctx.writer.add(user))
    return users


def make_sessions(ctx, users):
    source = ctx.sources[DS]
    cumulative = list(
        itertools.accumulate(ctx.rng.paretovariate(1.4) * ctx.active_share(u) for u in users)
    )
    total = ctx.count("ds_chats")
    with ctx.progress(total, "DS-ML agent sessions", "session") as bar:
        for index in range(total):
            user = None
            if index == 0 or not ctx.chance(0.05):
                user = users[ctx.rng.choices(range(len(users)), cum_weights=cumulative)[0]]
            write_session(ctx, source, user, force=index == 0)
            bar.update()
            ctx.writer.maybe_flush()


# planning ------------------------------------------------------------------


def pick_project(ctx):
    """(project name, tags, dataset or None for a paper review, paper topic)."""
    name, tags, dataset_index = ctx.rng.choice(catalog.DS_PROJECTS)
    topic = ctx.rng.choice(catalog.DS_PAPER_TOPICS)
    quarter = (ctx.anchor.month - 1) // 3 + 1
    name = name.format(quarter=quarter, paper_topic=topic)
    dataset = catalog.DATASETS[dataset_index] if dataset_index is not None else None
    return name, list(tags), dataset, topic


def turn_fill(ctx, dataset, topic, files):
    fill = texts.dataset_fill(ctx, dataset or ctx.rng.choice(catalog.DATASETS))
    rows = (dataset or {}).get("rows", ctx.rng.randint(2_000, 90_000))
    columns = [column[0] for column in (dataset or catalog.DATASETS[0])["numeric"]]
    columns += list((dataset or catalog.DATASETS[0])["categorical"])
    mean = ctx.rng.uniform(10, 100_000)
    fill.update(
        file=files[0].filename if files else fill["file"],
        rows=rows,
        columns=", ".join(columns),
        ncols=len(columns),
        missing_pct=f"{ctx.rng.uniform(0.1, 4.0):.1f}",
        share=ctx.rng.randint(22, 61),
        mean=f"{mean:,.2f}",
        median=f"{mean * ctx.rng.uniform(0.8, 1.0):,.2f}",
        std=f"{mean * ctx.rng.uniform(0.1, 0.6):,.2f}",
        skew=ctx.rng.choice(["roughly symmetric", "right-skewed", "slightly left-skewed"]),
        f=f"{ctx.rng.uniform(3, 80):.2f}",
        sizes=", ".join(str(ctx.rng.randint(300, 3000)) for _ in range(fill["k"])),
        anomalies=ctx.rng.randint(12, 400),
        paper_topic=topic,
    )
    return fill


def context_data(ctx, agent_type, fill, files):
    frame = files[0].filename.rsplit(".", 1)[0] if files else "df"
    if agent_type == "csv_analysis":
        return {
            "active_dataframe": frame,
            "row_count": fill["rows"],
            "columns": fill["columns"].split(", "),
        }
    if agent_type == "statistical_analysis":
        return {
            "active_dataframe": frame,
            "variables": {"x": fill["num"], "y": fill["num2"], "group": fill["cat"]},
            "previous_operations": ["load_csv", "describe"],
        }
    if agent_type == "ml_analysis":
        return {
            "active_dataframe": frame,
            "model_type": ctx.rng.choice(["kmeans", "gradient_boosting", "isolation_forest"]),
            "n_clusters": fill["k"],
            "features": [fill["num"], fill["num2"]],
        }
    return {"document": files[0].filename if files else None, "pages_read": fill["k"] * 4}


def plan_turns(ctx, dataset, topic, files, force):
    count = 1 + min(int(ctx.rng.expovariate(1 / 4.0)), 12)
    turns = []
    for number in range(count):
        if dataset is None:
            agent_type = "research_paper"
        elif number == 0:
            agent_type = "csv_analysis"
        else:
            agent_type = ctx.rng.choice(["statistical_analysis", "ml_analysis", "csv_analysis"])
        fill = turn_fill(ctx, dataset, topic, files)
        question, answer = ctx.rng.choice(catalog.DS_TURNS[agent_type])
        last = number == count - 1
        answered = force or not (last and ctx.chance(0.12))
        turns.append(
            Turn(
                agent_type=agent_type,
                question=question.format(**fill),
                answer=answer.format(**fill) if answered else None,
                context=context_data(ctx, agent_type, fill, files),
                gap=ctx.rng.uniform(20, 300) if number == 0 else think_time(ctx),
                thinking=min(ctx.rng.lognormvariate(2.5, 0.7), 180),
            )
        )
    return turns


def think_time(ctx):
    return min(ctx.rng.lognormvariate(4.8, 1.0), 3 * 3600)


def plan_files(ctx, dataset, topic, chat_pk, org, force):
    """Unsaved UploadedFile rows (chat and time set when written)."""
    if dataset is None:
        kinds = ["pdf"]
    elif force or ctx.chance(0.85):
        kinds = [ctx.rng.choice(["csv", "csv", "csv", "xlsx"])]
        if ctx.chance(0.15):
            kinds.append("pdf" if ctx.chance(0.3) else "xlsx")
    else:
        kinds = []
    return [build_file(ctx, kind, dataset, topic, chat_pk, org) for kind in kinds]


def build_file(ctx, kind, dataset, topic, chat_pk, org):
    rng = ctx.rng
    if kind == "pdf" or dataset is None:
        kind = "pdf"
        filename = topic.lower().replace(" ", "_") + "_paper.pdf"
        size = rng.randint(180_000, 6_000_000)
        metadata = {"page_count": rng.randint(8, 42), "text_extracted": True, "title": topic}
    else:
        stem = dataset["file"].rsplit(".", 1)[0]
        filename = f"{stem}.{kind}"
        numeric = [column[0] for column in dataset["numeric"]]
        categorical = list(dataset["categorical"])
        size = int(dataset["rows"] * (len(numeric) + len(categorical)) * rng.uniform(7, 11))
        metadata = {
            "columns": numeric + categorical,
            "row_count": dataset["rows"],
            "encoding": "utf-8",
        }
        if kind == "csv":
            metadata["data_types"] = {
                **{c[0]: "integer" if c[3] == 0 else "float" for c in dataset["numeric"]},
                **dict.fromkeys(categorical, "string"),
            }
            metadata["missing_values"] = {
                column: rng.randint(1, 60) for column in rng.sample(numeric, rng.randint(0, 2))
            }
        else:
            size = int(size * 0.75)
            metadata["sheets"] = ["Data", "Notes"] if rng.random() < 0.5 else ["Sheet1"]
    return UploadedFile(
        source=ctx.sources[DS],
        source_pk=ctx.pk(DS, "uploaded_files"),
        filename=filename,
        file_path=f"/uploads/{org.slug}/{chat_pk}/{filename}",
        file_type=kind,
        file_size=size,
        is_processed=not ctx.chance(0.05),
        file_metadata=metadata,
    )


# writing -------------------------------------------------------------------


def write_session(ctx, source, user, force=False):
    rng = ctx.rng
    org = user.organization if user else ctx.organization()
    name, tags, dataset, topic = pick_project(ctx)
    chat_pk = f"sess_{ctx.hex(12)}"
    files = plan_files(ctx, dataset, topic, chat_pk, org, force)
    turns = plan_turns(ctx, dataset, topic, files, force)
    duration = sum(turn.gap + turn.thinking for turn in turns) + 60
    signed_up = user.created_at + timedelta(minutes=5) if user else None
    start = ctx.clock.at(signed_up, ctx.anchor - timedelta(seconds=duration))
    expires = start + timedelta(days=30)
    chat = ctx.writer.add(
        Chat(
            source=source,
            source_pk=chat_pk,
            user=user,
            organization=org,
            title=name,
            starred=ctx.chance(0.2),
            is_active=expires > ctx.anchor and not ctx.chance(0.08),
            expires_at=expires,
            metadata={
                "project_name": name,
                "tags": tags,
                "last_activity": rng.choice(catalog.DS_LAST_ACTIVITY),
            },
            created_at=start,
        )
    )
    for file in files:
        file.chat = chat
        file.upload_timestamp = start + timedelta(seconds=rng.uniform(5, turns[0].gap))
        ctx.writer.add(file)
    moment, count, results = start, 0, 0
    for number, turn in enumerate(turns, 1):
        moment += timedelta(seconds=turn.gap)
        answered_at = write_turn(ctx, source, chat, number, turn, moment)
        count += 2 if answered_at else 1
        if answered_at and ((force and not results) or ctx.chance(0.35)):
            write_result(ctx, source, chat, turn, files, answered_at)
            results += 1
        moment = answered_at or moment
    chat.last_message_at = chat.updated_at = moment
    chat.message_count = count


def write_turn(ctx, source, chat, number, turn, moment):
    """A user message and, if answered, the assistant's; returns the answer time."""
    state_id = ctx.pk(DS, "conversation_states")
    common = {
        "source": source,
        "chat": chat,
        "turn_number": number,
        "agent_type": turn.agent_type,
        "context_data": turn.context,
    }
    ctx.writer.add(
        Message(
            source_pk=f"{state_id}:user",
            role=USER,
            content=turn.question,
            created_at=moment,
            **common,
        )
    )
    if turn.answer is None:
        return None
    answered = moment + timedelta(seconds=turn.thinking)
    ctx.writer.add(
        Message(
            source_pk=f"{state_id}:assistant",
            role=ASSISTANT,
            content=turn.answer,
            created_at=answered,
            **common,
        )
    )
    return answered


def write_result(ctx, source, chat, turn, files, answered):
    rng = ctx.rng
    analysis_type = catalog.DS_ANALYSIS_TYPES[turn.agent_type]
    wanted = "pdf" if analysis_type == "research_paper" else None
    matching = [f for f in files if (f.file_type == "pdf") == (wanted == "pdf")]
    file = matching[0] if matching and not ctx.chance(0.2) else None
    result_pk = ctx.pk(DS, "analysis_results")
    plots = {
        "csv": ["missing_values", "column_overview"],
        "statistical": ["correlation_heatmap", "scatter_plot", "distribution"],
        "ml": ["cluster_scatter", "elbow_plot", "feature_importance"],
        "research_paper": ["citation_graph"],
    }[analysis_type]
    chosen = rng.sample(plots, rng.randint(1, len(plots)))
    ctx.writer.add(
        AnalysisResult(
            source=source,
            source_pk=result_pk,
            chat=chat,
            analysis_type=analysis_type,
            file=file,
            result_data=result_data(ctx, analysis_type, turn),
            visualizations=[
                f"/visualizations/{chat.source_pk}/{p}_{result_pk}.png" for p in chosen
            ],
            created_at=answered + timedelta(seconds=rng.uniform(1, 8)),
            result_metadata={
                "execution_time_ms": ctx.lognormal(1500, 0.8, 80),
                "library_versions": catalog.DS_LIBRARIES[analysis_type],
                "random_state": 42,
            },
        )
    )


def result_data(ctx, analysis_type, turn):
    rng = ctx.rng
    context = turn.context
    if analysis_type == "csv":
        return {
            "row_count": context.get("row_count"),
            "column_count": len(context.get("columns", [])),
            "preview_columns": context.get("columns", [])[:5],
        }
    if analysis_type == "statistical":
        variables = context.get("variables", {"x": "x", "y": "y"})
        r = round(rng.uniform(-0.4, 0.95), 2)
        return {
            "correlation_matrix": {f"{variables['x']}_vs_{variables['y']}": r},
            "summary_statistics": {
                variables["x"]: {
                    "mean": round(rng.uniform(10, 1e5), 2),
                    "median": round(rng.uniform(10, 1e5), 2),
                    "std_dev": round(rng.uniform(1, 3e4), 2),
                }
            },
            "insights": [f"{texts.strength(r).capitalize()} correlation ({r})"],
        }
    if analysis_type == "ml":
        k = context.get("n_clusters", 4)
        return {
            "model_type": context.get("model_type", "kmeans"),
            "n_clusters": k,
            "silhouette_score": round(rng.uniform(0.35, 0.8), 2),
            "cluster_sizes": [rng.randint(300, 3000) for _ in range(k)],
        }
    return {
        "summary": turn.answer,
        "key_findings": ["State-of-the-art results on two benchmarks", "No ablation study"],
        "citations": rng.randint(12, 80),
    }
