"""The ``backup_time`` plugin: bank state, on-battery time, time to end of discharge,
discharge records and the cell-imbalance trend (docs/backup_time.md).

A processor over the bank snapshot: it puts a :class:`gateway.model.BackupEstimate` into
every snapshot and emits the on-battery / back-on-mains events; the north plugins serve
what it puts there. Hookimpls only; the core and its glue are imported when enabled.
"""

from gateway.hookspecs import hookimpl

SECTION = "backup_time"


@hookimpl
def gateway_register_config(register):
    from plugins.backup_time.settings import BackupTimeSettings

    register(SECTION, BackupTimeSettings)


@hookimpl
def gateway_default_config():
    return {SECTION: {}}


@hookimpl(tryfirst=True)
def gateway_register_processors(context, register):
    # tryfirst: the hub runs this processor before the alarm rules, which read the
    # imbalance trend it puts into the snapshot
    from plugins.backup_time.processor import make_processor

    processor = make_processor(context.section(SECTION), state_dir=context.state_dir,
                               now=context.clock(), wall_time=context.wall_clock())
    context.extra[SECTION] = processor
    register(processor)


@hookimpl
def gateway_register_components(context, register):
    from plugins.backup_time.processor import BackupService

    service = BackupService(context.extra[SECTION], state_dir=context.state_dir,
                            clock=context.clock)
    register(service, role="service")


@hookimpl
def gateway_reload(context):
    processor = context.extra.get(SECTION)
    if processor is not None and context.section(SECTION) is not None:
        processor.apply(context.section(SECTION))
