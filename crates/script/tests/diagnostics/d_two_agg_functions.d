python$target:::function-entry
{
	@a = count();
}

python$target:::function-return
{
	@a = sum(arg2);
}
