# Students: a group's methods are split between pipeline.student_jobs jobs (2: one per core once the teachers are
# done), each one process training its methods as one stacked model: one process start and one optimizer step per
# epoch for all of them. student_jobs: 0 gives one job per method and group (a cluster spreads them over nodes).
# Both write the same paths and the same results (kdreg.student.train_method_students).

for name_, (paths_, group_, methods_) in STUDENT_GROUP_JOBS.items():

    rule:
        name:
            name_
        conda:
            "../../environment.yml"
        input:
            data=paths_.clean,
            noisy=paths_.group_noisy(group_),
            teacher=[paths_.teacher_dir(group_)] if any(get_method(m).uses_teacher for m in methods_) else [],
            code=code("train-students"),
        output:
            [directory(paths_.student_dir(m, group_)) for m in methods_],
        params:
            methods=methods_,
            configs=[run_config(student_config(paths_.params, paths_.dataset, m)) for m in methods_],
            noisy_dir=paths_.noise_dir,
            models=members(paths_, group_),
            device=config["device"],
            teacher=(["--teacher-dir", paths_.teacher_dir(group_)]
                     if any(get_method(m).uses_teacher for m in methods_) else []),
        threads: config["pipeline"]["student_threads"]
        log:
            f"results/logs/students/{paths_.dataset}-{paths_.data_key}/{paths_.noise}/{name_}.log",
        shell:
            "python -m kdreg --log {log:q} train-students --method {params.methods:q} --data {input.data:q}"
            " --noisy-dir {params.noisy_dir:q} --models {params.models:q} {params.teacher:q}"
            " --config {params.configs:q} --device {params.device:q} --threads {threads} --out-dir {output:q}"
