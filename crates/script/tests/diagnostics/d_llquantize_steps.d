python$target:::function-entry
{
	@l = llquantize(arg2, 10, 0, 3, 15);
}
